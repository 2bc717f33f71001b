"""The long-running agent: wiring, scheduling, signals and systemd integration."""
