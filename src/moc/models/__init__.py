"""Model specs, the catalog, and memory estimates from model files."""
