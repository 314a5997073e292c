"""``manage.py faust dead-letters``: list and replay the dead-letter topic.

Events a worker could not decode or process (POISON_POLICY 'dead_letter')
wait in DEAD_LETTER_TOPIC with their original bytes. ``list`` shows where
each came from and why it failed; ``replay`` sends the original bytes back
to their topic and partition once the cause is fixed (the letters stay in
the dead-letter topic: replaying twice sends twice).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from .base import get_app


def _offset_range(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None:
        return None
    first, sep, last = value.partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise click.BadParameter(
            f"expected FIRST-LAST or OFFSET (source offsets), got {value!r}"
        ) from None
    if low > high:
        raise click.BadParameter(f"{low} is past {high}")
    return low, high


def _filters(fun: Any) -> Any:
    for option in reversed(
        [
            click.option("--topic", help="Only events read from this topic."),
            click.option("--agent", help="Only events this agent raised on."),
            click.option(
                "--partition", type=int, help="Only events of this source partition."
            ),
            click.option(
                "--offsets",
                callback=_offset_range,
                metavar="FIRST-LAST",
                help="Only events whose source offset is in this range (inclusive).",
            ),
        ]
    ):
        fun = option(fun)
    return fun


async def _chosen(app: Any, filters: dict[str, Any]) -> list[Any]:
    from ..dead_letters import read_dead_letters, select

    return select(await read_dead_letters(app), **filters)


@click.group("dead-letters")
def dead_letters() -> None:
    """List and replay the events workers sent to the dead-letter topic."""


@dead_letters.command("list")
@_filters
def list_(**filters: Any) -> None:
    """One line per dead letter: where it came from, what failed, the key."""
    from ..dead_letters import preview

    app = get_app()

    async def run() -> list[Any]:
        await app.start_client()
        try:
            return await _chosen(app, filters)
        finally:
            await app.stop()

    letters = asyncio.run(run())
    click.echo(f"{len(letters)} dead letter(s) in {app.conf.dead_letter_topic}")
    if not letters:
        return
    click.echo("TOPIC\tPARTITION\tOFFSET\tSTAGE\tAGENT\tERROR\tKEY")
    for letter in letters:
        error = letter.error if len(letter.error) <= 60 else letter.error[:59] + "…"
        click.echo(
            f"{letter.topic}\t{letter.source_partition}\t{letter.source_offset}\t"
            f"{letter.stage}\t{letter.agent or '-'}\t{error}\t{preview(letter.key)}"
        )


@dead_letters.command("replay")
@_filters
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
def replay(dry_run: bool, **filters: Any) -> None:
    """Send the original bytes of dead letters back to their topics."""
    from ..dead_letters import replay as send_back

    app = get_app()

    async def run() -> tuple[list[Any], int]:
        await app.start_client()
        try:
            letters = await _chosen(app, filters)
            sent = 0 if dry_run else await send_back(app, letters)
            return letters, sent
        finally:
            await app.stop()

    letters, sent = asyncio.run(run())
    for letter in letters:
        verb = "would send" if dry_run else "sent"
        click.echo(f"{verb} {letter.source} ({letter.stage})")
    if dry_run:
        click.echo(f"Dry run: {len(letters)} dead letter(s) would be replayed.")
    else:
        click.echo(f"Replayed {sent} dead letter(s).")
