"""Settings for django-faust.

A Django project configures django-faust with one dict, named after Faust's
settings in upper case::

    FAUST = {
        "APP_ID": "shop",
        "BROKER": "kafka://k1:9092;k2:9092",
        "STORE": "rocksdb://",
        "TOPIC_PARTITIONS": 8,
    }

Outside Django the same settings are given as keyword arguments in lower case
(``App("shop", broker="kafka://k1:9092")``).

The package has one module per job: `settings` declares every setting (the
`Settings` class), `setting` is the machinery of one declaration, `validators`
holds the checks and conversions the declarations use, `problems` analyses a
FAUST dict and phrases what is wrong with it (with did-you-mean hints),
`django` reads ``settings.FAUST`` from a Django project, `sources` reads
``App(config_source=...)`` (a module, object or dict), and `schemes` is the
one registry of the URL schemes a driver exists for.

Building `Settings` never touches the network and does no I/O beyond looking
up a time zone name, so it is cheap enough to do on every call.
"""

from __future__ import annotations

from .django import default_app_id
from .problems import Problem
from .schemes import BROKER_SCHEMES, STORE_SCHEMES
from .setting import Setting
from .settings import SETTINGS, Settings, find_problems, reference_rst

__all__ = [
    "BROKER_SCHEMES",
    "SETTINGS",
    "STORE_SCHEMES",
    "Problem",
    "Setting",
    "Settings",
    "default_app_id",
    "find_problems",
    "reference_rst",
]
