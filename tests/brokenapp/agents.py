"""An agents module that fails to import, for the autodiscovery tests."""

raise RuntimeError("brokenapp.agents exploded on import")
