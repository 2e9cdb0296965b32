"""The SQLite connection, its ordered schema migrations, and the data directory.

No repositories and no business rules here: each part keeps its tables'
reads and writes beside it (``leases/store.py``, ``jobs/store.py``,
``models/store.py``, ``lifecycle/records.py``), so this package imports no
part above it.
"""
