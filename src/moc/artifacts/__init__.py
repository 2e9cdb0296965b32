"""Artifacts: what learning jobs produce and what models load from, as a
content-addressed registry of signed manifests, verified before anything
reads them."""
