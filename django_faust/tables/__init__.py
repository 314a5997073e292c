"""Tables: dict-like state kept alongside the streams that update it."""

from .manager import TableManager
from .table import GlobalTable, SetGlobalTable, SetTable, Table

__all__ = ["GlobalTable", "SetGlobalTable", "SetTable", "Table", "TableManager"]
