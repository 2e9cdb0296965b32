"""Runtimes moc starts and supervises: one adapter per runtime, one supervisor."""
