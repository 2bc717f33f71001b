"""Grid carbon intensity: where the node is, how dirty its grid is, what is emitted."""
