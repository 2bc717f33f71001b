"""Test doubles shaped like the real thing: sysfs/procfs trees, clocks, providers."""
