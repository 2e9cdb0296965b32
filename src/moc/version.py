"""The version of moc, apart from the package root so the server parts can read it
without importing the SDK that the root re-exports."""

__version__ = "0.1.0"
