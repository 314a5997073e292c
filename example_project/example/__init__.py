"""The example project's configuration package (settings, URLs, ASGI)."""
