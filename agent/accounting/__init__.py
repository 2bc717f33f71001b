"""Energy arithmetic: counter deltas, power integration, node totals, emissions, snapshots."""
