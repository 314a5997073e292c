"""The worker project as an ASGI application (``uvicorn asgi:application``),
served by a separate web process or by the worker itself."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
application = get_asgi_application()
