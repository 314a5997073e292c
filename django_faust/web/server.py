"""The web server a worker runs: the project's ASGI site in the worker's loop.

With ``WEB_ENABLED`` the worker serves the Django project itself (views,
admin, Channels consumers) from the same event loop as the agents, so the
embedded default is one process: a view can ``await app.send(...)`` straight
into a running agent. The server is uvicorn, driven as a library.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..app.base import App

__all__ = ["WebServer", "project_asgi_application"]

logger = logging.getLogger(__name__)


def project_asgi_application() -> Any:
    """The project's ASGI app: ``ASGI_APPLICATION`` if set, else Django's.

    With ``DEBUG`` and ``django.contrib.staticfiles`` installed, static files
    are served too, as ``runserver`` does.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "ASGI_APPLICATION", None)
    if path:
        application = import_string(path)
    else:
        from django.core.asgi import get_asgi_application

        application = get_asgi_application()
    from django.apps import apps

    if settings.DEBUG and apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        application = ASGIStaticFilesHandler(application)
    return application


class WebServer:
    """Serves an ASGI application on ``bind:port`` until stopped."""

    def __init__(
        self, app: App, *, port: int, bind: str, application: Any = None
    ) -> None:
        self.app = app
        self.port = port
        self.bind = bind
        self.application = application
        self._server: Any = None
        self._task: asyncio.Future[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}/"

    async def start(self) -> None:
        import uvicorn

        application = self.application or project_asgi_application()
        config = uvicorn.Config(
            application,
            host=self.bind,
            port=self.port,
            lifespan="off",
            log_config=None,
            access_log=False,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup()
        except SystemExit:
            raise ImproperlyConfigured(
                f'FAUST["WEB_PORT"]: cannot listen on {self.bind}:{self.port} '
                "(in use?). Pick another port with --web-port, or --without-web."
            ) from None
        self._server = server
        self._task = asyncio.ensure_future(server.main_loop())
        logger.info("Web server listening on %s", self.url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._task is not None:
            await self._task
        await server.shutdown()
