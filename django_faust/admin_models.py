"""Models that exist only to hang the admin pages and their permissions on.

Django's admin registers pages per model, and permissions need a content
type, which needs a model. These models are unmanaged (``managed = False``):
no database table is ever created or queried for them; the admin's views
for them read the stream processor's state (`django_faust.admin_data`).
The migration ``django_faust/0001`` exists so that ``migrate`` creates the
content types and the permissions:

* ``django_faust.view_table``: see tables, their keys and the workers;
* ``django_faust.change_table``: set and delete keys of the tables made
  editable with `django_faust.admin_edits.enable_admin_edits`.
"""

from __future__ import annotations

from django.db import models

__all__ = ["StreamTable", "StreamWorker"]


class StreamTable(models.Model):
    """The tables of the app (the admin's "Tables" page)."""

    class Meta:
        managed = False
        app_label = "django_faust"
        default_permissions = ()
        permissions = [
            ("view_table", "Can see stream tables, their keys and the workers"),
            ("change_table", "Can set and delete keys of editable tables"),
        ]
        verbose_name = "table"
        verbose_name_plural = "tables"


class StreamWorker(models.Model):
    """The workers of the group (the admin's "Workers" page)."""

    class Meta:
        managed = False
        app_label = "django_faust"
        default_permissions = ()
        verbose_name = "worker"
        verbose_name_plural = "workers"
