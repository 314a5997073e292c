"""The worker's web side: pages, table routes, the router, built-in views.

- `pages`: ``@app.page`` and ``@app.table_route``, the forward to the owner;
- `router`: which worker owns a table key (``app.router``);
- `views`: stats, agents, tables, assignment, lag, health and metrics;
- `access`: which of the built-in views are open;
- `http`: the small HTTP client workers ask each other with;
- `server`: the ASGI server the worker runs.
"""

from .pages import View, Web

__all__ = ["View", "Web"]
