"""Sensors: statistics about a running app (`Sensor`, `Monitor`)."""

from .base import Sensor, SensorDelegate
from .monitor import Monitor

__all__ = ["Monitor", "Sensor", "SensorDelegate"]
