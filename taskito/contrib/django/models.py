"""No tables: one unmanaged model that carries the admin pages' permissions
(``taskito.view_jobs``, ``taskito.retry_dead_letters``), so they can be granted to staff users
and groups like any other Django permission."""

from __future__ import annotations

from django.db import models


class TaskitoPermissions(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_jobs", "Can view taskito jobs and dead letters"),
            ("retry_dead_letters", "Can retry taskito dead letters"),
        ]
