"""Scheduling quality by trace replay: a discrete-event simulator.

``trace`` writes seeded request traces, ``world`` keeps the virtual clock,
the models' memory and the outcome of each request, ``moc_policy`` drives
moc's real waiting room and placement policy the way the daemon's glue does,
``baselines`` drives the peers' documented behaviour and computes the
offline bound, and ``run`` prints the tables:

    python -m benchmarks.schedsim.run           # the traces, all policies
    python -m benchmarks.schedsim.replay_real   # one trace on a real moc serve

(from the repository root). The figures and what they show are in
docs/benchmarks.md.
"""
