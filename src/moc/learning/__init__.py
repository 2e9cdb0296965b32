"""Learning: datasets, learning jobs (sft, quantize, index) and their processes,
goals and the learning queue, yielding memory to inference and resuming exactly.

The daemon side (this package but :mod:`moc.learning.worker`) never imports the
heavy libraries; :mod:`moc.learning.worker` is what runs inside a job's child
process, in the Python that ``learning.python`` names.
"""
