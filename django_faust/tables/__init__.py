"""Tables: dict-like state kept alongside the streams that update it."""

from .manager import TableManager
from .table import Table

__all__ = ["Table", "TableManager"]
