"""Sensors: statistics about a running app."""

from .monitor import Monitor

__all__ = ["Monitor"]
