"""Typed records: the payloads of streams, declared like dataclasses.

This package does not depend on Django; it can be used (and tested) alone.
"""

from __future__ import annotations

from django_faust.models.fields import MISSING, FieldDescriptor
from django_faust.models.namespaces import (
    METADATA_KEY,
    NAMESPACE_KEY,
    decode_model_payload,
    model_for_payload,
    registry,
)
from django_faust.models.record import Record

__all__ = [
    "METADATA_KEY",
    "MISSING",
    "NAMESPACE_KEY",
    "FieldDescriptor",
    "Record",
    "decode_model_payload",
    "model_for_payload",
    "registry",
]
