"""What moc keeps loaded: the table of models, eviction, idle unload."""
