"""Live grid intensity sources: one file per provider, chosen in registry.py."""
