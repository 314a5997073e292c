"""``manage.py faust ...``: hands its arguments to the click group."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Stream processing: worker, send, agents, models, ... (--help for all)."
    # System checks run before the worker starts (see run_from_argv).
    requires_system_checks: list[str] = []

    def run_from_argv(self, argv: list[str]) -> None:
        from django_faust.cli import main

        args = argv[2:]
        if args and args[0] == "worker":
            # Like runserver: refuse to start on settings that cannot work.
            self.check(display_num_errors=False)
        main(args, prog_name=f"{os.path.basename(argv[0])} {argv[1]}")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*")

    def handle(self, *args: str, **options: Any) -> None:
        # call_command("faust", "agents") lands here.
        from django_faust.cli import faust

        try:
            faust.main(args=list(args), prog_name="faust", standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
