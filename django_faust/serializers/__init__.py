"""Turning Python objects into bytes and back.

`codecs` holds the named, composable codecs; `registry` (imported on demand,
since it depends on the models package) builds the per-topic key and value
encoders and decoders.
"""

from __future__ import annotations

from django_faust.serializers.codecs import Codec, dumps, get_codec, loads, register

__all__ = ["Codec", "dumps", "get_codec", "loads", "register"]
