"""Request queues and the decision which request runs next."""
