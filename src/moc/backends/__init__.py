"""Runtimes: how each kind of model server is sized, started, watched, reached
and found again after a restart of moc, behind one protocol
(:class:`moc.backends.runtime.Runtime`), and the supervisor state machine they
share (:mod:`moc.backends.supervisor`, :mod:`moc.backends.state`).

The kinds: ``llamacpp`` (:mod:`.llamacpp`) and ``vllm`` (:mod:`.vllm`),
processes moc starts (:mod:`.process_runtime`); ``ollama`` (:mod:`.ollama`),
models held resident in an Ollama server; ``openai`` (:mod:`.remote`), a
server elsewhere that moc only routes to.

To add a runtime:

1. write ``backends/<kind>.py`` with a class that has the protocol's methods
   (subclass :class:`~moc.backends.process_runtime.ProcessRuntime` when it
   is a process moc starts: then ``launch`` and ``sizing`` are all it needs);
2. register it in :func:`moc.backends.registry.build_runtimes`;
3. add the kind to ``models.spec.SUPPORTED_BACKENDS`` and the spec's
   ``backend`` literal, with the spec fields it does not use.

Nothing in ``lifecycle/`` changes: it never asks which kind a model is.
"""
