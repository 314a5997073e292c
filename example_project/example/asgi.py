"""ASGI entry point of the example project.

``manage.py faust worker`` serves this application from the worker's own
event loop (``ASGI_APPLICATION`` in settings), so views and agents share one
process. Any ASGI server can also serve it on its own, e.g.
``uvicorn example.asgi:application``; views then send through their own
producer.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

application = get_asgi_application()
