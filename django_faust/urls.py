"""``path("faust/", include("django_faust.urls"))``: our views and every page.

Mounts the built-in views (`django_faust.web.views`) and every
``@app.page`` of the project's app, declared in the ``views.py`` (or any
autodiscovered module) of an installed app. Pages are read when the URLconf
is first loaded, after ``ready()`` imported them.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from .app.project import get_project_app
from .web import views

app_name = "django_faust"


def page_patterns() -> list[URLPattern]:
    """A URL pattern per ``@app.page`` of the project's app."""
    app = get_project_app()
    return [
        path(page.route_path, page.as_view(), name=page.name)
        for page in app.pages.values()
    ]


urlpatterns = [
    path("stats/", views.stats, name="stats"),
    path("agents/", views.agents, name="agents"),
    path("tables/", views.tables, name="tables"),
    path("tables/<str:name>/key/", views.table_key, name="table-key"),
    path("assignment/", views.assignment, name="assignment"),
    path("lag/", views.lag, name="lag"),
    path("health/live/", views.health_live, name="health-live"),
    path("health/ready/", views.health_ready, name="health-ready"),
    path("metrics/", views.metrics, name="metrics"),
    *page_patterns(),
]
