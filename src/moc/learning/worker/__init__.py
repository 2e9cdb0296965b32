"""What runs inside a learning job's child process (see protocol.py)."""
