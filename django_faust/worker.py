"""The Worker: runs an App as a long-lived process.

It owns what belongs to a process rather than to the App: logging, the
SIGINT/SIGTERM handlers, the banner, the web server (when enabled), and an
orderly shutdown — stop fetching, let agents finish the event in hand,
commit, then stop every service. A second signal during shutdown exits at
once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app.base import App
    from .orm import CloseOldConnections

__all__ = ["RepeatFilter", "Worker", "setup_logging"]

logger = logging.getLogger(__name__)

LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class RepeatFilter(logging.Filter):
    """Lets one of each repeated aiokafka message through per ``period``.

    While the broker is unreachable aiokafka logs every failed reconnect,
    heartbeat and metadata refresh, many per second; the worker logs the
    outage itself, once when it starts and once when it ends. The first
    record of a kind (logger and message template) passes, then at most
    one per period, saying how many were held back.
    """

    def __init__(self, prefix: str = "aiokafka", period: float = 60.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.period = period
        self._seen: dict[tuple[str, Any], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.msg)
        now = record.created
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.period:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if last is not None and last[1]:
            record.msg = f"{record.msg} (and {last[1]} more like it, not shown)"
        return True


def setup_logging(loglevel: str | int = "info") -> None:
    """Log to stderr at ``loglevel``, once per process (worker, send, ...)."""
    level = loglevel
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    root = logging.getLogger()
    if not any(getattr(h, "_django_faust", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(RepeatFilter())
        handler._django_faust = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    if level > logging.DEBUG:
        # mode logs every service start/stop at INFO: noise for users.
        logging.getLogger("mode").setLevel(logging.WARNING)


class Worker:
    """Start an App, serve until a signal, and shut down cleanly.

    ``execute_from_commandline()`` runs it in a new event loop and returns
    the process exit code (0 after a clean stop, 1 after a crash).
    """

    def __init__(
        self,
        app: App,
        *,
        loglevel: str | int = "info",
        web_enabled: bool | None = None,
        web_port: int | None = None,
        web_bind: str | None = None,
        quiet: bool = False,
        stdout: IO[str] | None = None,
        shutdown_timeout: float | None = None,
        setup_logging: bool = True,
    ) -> None:
        self.app = app
        self.loglevel = loglevel
        self._apply_web_options(web_enabled, web_port, web_bind)
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.setup_logging = setup_logging
        if shutdown_timeout is not None:
            app.shutdown_timeout = shutdown_timeout
        self._stop_requested: asyncio.Event | None = None
        self._signals = 0
        self.web: Any = None

    # -- process ---------------------------------------------------------------

    def execute_from_commandline(self) -> int:
        try:
            return asyncio.run(self.run())
        except KeyboardInterrupt:  # second ^C while shutting down
            return 130

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                signal.signal(signum, lambda s, f: self._on_signal(s))

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            logger.warning("Second signal received: exiting now.")
            os._exit(1)
        logger.info(
            "Received %s: finishing in-flight events, then stopping.",
            signal.Signals(signum).name,
        )
        if self._stop_requested is not None:
            self._stop_requested.set()

    def request_stop(self) -> None:
        """Ask a running worker to shut down (as SIGTERM does)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    # -- running -----------------------------------------------------------------

    async def run(self) -> int:
        app = self.app
        if self.setup_logging:
            setup_logging(self.loglevel)
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._install_signal_handlers(loop)
        app.on_worker_init.send()
        self._say(self.banner())
        crashed = False
        housekeeping = app.housekeeping = self._db_housekeeping()
        try:
            await app.start()
            await self._start_web()
            logger.info("Worker ready: %s", app.conf.id)
            stop_waiter = asyncio.ensure_future(self._stop_requested.wait())
            crash_waiter = asyncio.ensure_future(app._crashed.wait())
            await asyncio.wait(
                {stop_waiter, crash_waiter}, return_when=asyncio.FIRST_COMPLETED
            )
            stop_waiter.cancel()
            crash_waiter.cancel()
            crashed = app.crashed
            if crashed:
                logger.critical("The app crashed: %r", app.crash_reason)
        except Exception as exc:
            crashed = True
            logger.critical("Worker failed to start: %r", exc, exc_info=exc)
        finally:
            app.housekeeping = None
            if housekeeping is not None:
                await housekeeping.wait()
            await self._stop_web()
            await app.stop()
            logger.info("Worker stopped.")
        return 1 if crashed else 0

    def _db_housekeeping(self) -> CloseOldConnections | None:
        """Close obsolete DB connections between batches, as requests would."""
        from django.conf import settings

        if not settings.configured or not getattr(settings, "DATABASES", None):
            return None
        from .orm import CloseOldConnections

        return CloseOldConnections()

    def _apply_web_options(
        self, enabled: bool | None, port: int | None, bind: str | None
    ) -> None:
        """Command-line web options become the app's settings.

        Not only the server reads them: the consumer announces this worker's
        URL (``WEB_HOST``:``WEB_PORT``) to the group for the router, and a
        worker serving no web announces none.
        """
        given = {"web_enabled": enabled, "web_port": port, "web_bind": bind}
        given = {name: value for name, value in given.items() if value is not None}
        if given:
            with self.app.conf.editable() as conf:
                for name, value in given.items():
                    setattr(conf, name, value)

    def _web_enabled(self) -> bool:
        return bool(self.app.conf.web_enabled)

    async def _start_web(self) -> None:
        if not self._web_enabled():
            return
        from .web.server import WebServer

        self.web = WebServer(
            self.app,
            port=self.app.conf.web_port,
            bind=self.app.conf.web_bind,
        )
        await self.web.start()

    async def _stop_web(self) -> None:
        if self.web is not None:
            await self.web.stop()
            self.web = None

    # -- output --------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stdout, flush=True)

    def banner(self) -> str:
        app = self.app
        conf = app.conf
        web = (
            f"http://{conf.web_bind}:{conf.web_port}/"
            if self._web_enabled()
            else "disabled"
        )
        lines = [
            f"django-faust worker: {conf.id}",
            f"  transport  {conf.broker_url}",
            f"  store      {conf.store}",
            f"  web        {web}",
            f"  agents     {len(app.agents)}: {', '.join(sorted(app.agents)) or '-'}",
            f"  tables     {len(app.tables)}",
            f"  timers     {len(app.timers)}",
            f"  pid        {os.getpid()}",
        ]
        return "\n".join(lines)
