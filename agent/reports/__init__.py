"""`carbonscope report`: the ledger's node history and jobs as figures for disclosure."""
