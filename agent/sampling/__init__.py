"""Sampling: the monitor reads every source once per tick, does the accounting and publishes
a snapshot."""
