"""``manage.py faust worker``: run the project's agents, timers and tables."""

from __future__ import annotations

import sys

import click

from .base import get_app


@click.command()
@click.option(
    "-l",
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error", "critical"], False),
    help="Logging level.",
)
@click.option(
    "--web/--without-web",
    "web",
    default=None,
    help="Serve the project's web site with the worker (default: WEB_ENABLED).",
)
@click.option("-p", "--web-port", type=click.IntRange(1, 65535), help="Web port.")
@click.option("-b", "--web-bind", help="Address the web server listens on.")
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds agents get to finish the events in hand when stopping "
    "(default: WORKER_SHUTDOWN_TIMEOUT, 30).",
)
@click.option("-q", "--quiet", is_flag=True, help="Don't print the banner.")
def worker(
    loglevel: str,
    web: bool | None,
    web_port: int | None,
    web_bind: str | None,
    shutdown_timeout: float | None,
    quiet: bool,
) -> None:
    """Start a worker: run agents, tasks and timers until SIGINT/SIGTERM."""
    from ..worker import Worker

    code = Worker(
        get_app(),
        loglevel=loglevel,
        web_enabled=web,
        web_port=web_port,
        web_bind=web_bind,
        quiet=quiet,
        shutdown_timeout=shutdown_timeout,
    ).execute_from_commandline()
    sys.exit(code)
