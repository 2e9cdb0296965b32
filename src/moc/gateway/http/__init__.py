"""moc's HTTP API on Starlette (chosen by measurement; see docs/benchmarks.md)."""
