"""The ``moc`` command."""
