"""Several moc daemons as one, over Redis: membership, routing to a model's
holder, placement of a cold model, forwarding, cluster-wide limits."""
