"""The ``manage.py faust`` click group, with the project's own commands in it.

Built-in commands live in sibling modules; commands declared with
``@app.command`` are added when the group is asked for them, so they appear
in ``--help`` like the built-in ones. A command function whose first
parameter is ``self`` is called with an `AppCommand`, as in Faust.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from typing import TYPE_CHECKING, Any, Iterable, NoReturn, Sequence

import click

if TYPE_CHECKING:
    from ..app.base import App, CommandSpec


def get_app() -> App:
    from ..app.project import get_project_app

    return get_project_app()


class FaustGroup(click.Group):
    """A group that also lists the app's ``@app.command`` commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(get_app().commands)
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        spec = get_app().commands.get(name)
        if spec is None:
            return None
        return app_command(spec)


class AppCommand:
    """What an ``@app.command`` function gets as ``self``.

    ::

        @app.command(click.option("--name", default="world"))
        async def hello(self, name):
            self.say(f"hello {name} from {self.app.conf.id}")

    Subclass it and pass ``base=`` to ``@app.command`` to add helpers of
    your own.
    """

    def __init__(self, app: App, ctx: click.Context | None = None) -> None:
        #: The project's App (not started: start it if the command needs it).
        self.app = app
        #: The click context of this run (``ctx.params`` holds the options).
        self.ctx = ctx

    def say(self, message: Any = "", *, err: bool = False) -> None:
        """Print a line to standard output (``err=True``: standard error)."""
        click.echo(message, err=err)

    def carp(self, message: Any) -> None:
        """Print a line to standard error."""
        click.echo(message, err=True)

    def abort(self, message: str, *, status: int = 1) -> NoReturn:
        """Print ``message`` to standard error and exit with ``status``."""
        click.echo(message, err=True)
        sys.exit(status)

    def table(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        as_json: bool = False,
    ) -> None:
        """Print rows as an aligned table (or JSON), as the built-in commands do."""
        print_table(headers, rows, as_json=as_json)


def takes_self(fun: Any) -> bool:
    """Whether a command function's first parameter is ``self`` (Faust style)."""
    try:
        params = list(inspect.signature(fun).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] == "self"


def app_command(spec: CommandSpec) -> click.Command:
    """Turn an ``@app.command`` function into a click command."""
    with_self = takes_self(spec.fun)

    def callback(**kwargs: Any) -> Any:
        if with_self:
            command = (spec.base or AppCommand)(get_app(), click.get_current_context())
            result = spec.fun(command, **kwargs)
        else:
            result = spec.fun(**kwargs)
        if inspect.isawaitable(result):
            return asyncio.run(_await(result))
        return result

    command: Any = callback
    for option in reversed(list(spec.options)):
        command = option(command)
    return click.command(name=spec.name, help=spec.help)(command)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, as_json: bool = False
) -> None:
    """Print rows as an aligned text table, or as JSON objects."""
    rows = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    if as_json:
        keys = [h.lower() for h in headers]
        click.echo(
            json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2)
        )
        return
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    click.echo(line.rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in rows:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
