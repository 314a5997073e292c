"""``manage.py faust tables|reset``: the project's tables and their local data."""

from __future__ import annotations

import click

from .base import get_app, json_option, print_table


@click.command()
@json_option
def tables(as_json: bool) -> None:
    """List the project's tables, their changelog topics and stores."""
    app = get_app()
    rows = []
    for info in sorted(app.tables.describe(), key=lambda info: info["name"]):
        first_line = (info["help"] or "").strip().splitlines()
        rows.append(
            [
                info["name"],
                info["kind"],
                info["changelog"],
                info["store"],
                info["default"],
                first_line[0] if first_line else "",
            ]
        )
    print_table(
        ["Name", "Kind", "Changelog", "Store", "Default", "Help"],
        rows,
        as_json=as_json,
    )


@click.command()
@click.option("-y", "--yes", is_flag=True, help="Don't ask for confirmation.")
@click.pass_context
def reset(ctx: click.Context, yes: bool) -> None:
    """Delete the local data of every table (RocksDB files included).

    The next worker start rebuilds the tables from their changelog topics,
    which this command does not touch. Stop the project's worker on this
    machine first: the command does not check, and deleting the files of a
    running worker leaves it with tables that no longer match its disk.
    """
    app = get_app()
    names = sorted(app.tables)
    if not names:
        click.echo("The project declares no tables: nothing to reset.")
        return
    on_disk = [name for name in names if app.tables[name].store.persistent]
    if not on_disk:
        click.echo(
            f"The project's {len(names)} table(s) ({', '.join(names)}) keep their "
            "data in memory only: there is nothing on disk to delete, and every "
            "worker start rebuilds them from their changelogs."
        )
        return
    directories = sorted({str(app.tables[name].store.directory) for name in on_disk})
    what = f"{len(on_disk)} table(s) ({', '.join(on_disk)}) in {', '.join(directories)}"
    if not yes:
        question = (
            f"Delete the local data of {what}? The project's worker must be stopped"
        )
        if not click.confirm(question, default=False):
            click.echo("Aborted: no table data was deleted.", err=True)
            ctx.exit(1)
    app.tables.reset()
    click.echo(
        f"Reset {what}; the next worker start rebuilds them from their changelogs."
    )
