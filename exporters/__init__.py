"""Exporters render monitor snapshots for other systems; they never read hardware."""
