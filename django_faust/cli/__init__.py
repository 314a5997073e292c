"""The ``manage.py faust`` command line (click)."""

from __future__ import annotations

from typing import Sequence

import click

from .base import FaustGroup
from .dead_letters import dead_letters
from .introspect import agents, model, models
from .send import send
from .tables import reset, tables
from .worker import worker

__all__ = ["faust", "main"]


@click.group(cls=FaustGroup, context_settings={"help_option_names": ["-h", "--help"]})
def faust() -> None:
    """Stream processing for this Django project (django-faust)."""


faust.add_command(worker)
faust.add_command(send)
faust.add_command(agents)
faust.add_command(models)
faust.add_command(model)
faust.add_command(tables)
faust.add_command(reset)
faust.add_command(dead_letters)


def main(args: Sequence[str] | None = None, prog_name: str = "faust") -> None:
    faust.main(args=list(args) if args is not None else None, prog_name=prog_name)
