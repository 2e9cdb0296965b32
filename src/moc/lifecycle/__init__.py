"""The models' lifecycle: the table of slots, loading and making room, learned
sizes, recovery after a restart, idle unload. See design.md beside this file."""
