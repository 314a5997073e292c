"""The example project's settings with a typo in FAUST (for the check test)."""

from example.settings import *  # noqa: F403

FAUST = {**FAUST, "TOPIC_PARTITONS": 4}  # noqa: F405
