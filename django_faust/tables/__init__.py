"""Tables: dict-like state kept alongside the streams that update it."""

from .manager import TableManager
from .table import GlobalTable, SetTable, Table

__all__ = ["GlobalTable", "SetTable", "Table", "TableManager"]
