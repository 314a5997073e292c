"""One module per competitor; each runs as ``python -m rows.<name>``."""
