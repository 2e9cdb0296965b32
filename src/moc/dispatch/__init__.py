"""Taking inference requests to their backends: breaker, queue, load, send."""
