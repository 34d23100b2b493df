"""Which store a ``Queue`` uses: a SQLite file or a PostgreSQL schema.

Resolution, first match wins: an explicit ``db_url`` (or a ``db_path`` written as a
``postgresql://`` URL) or ``db_path`` argument; ``backend=`` given explicitly; then the
environment, ``TASKITO_DB_PATH`` before ``TASKITO_DB_URL``; then the default SQLite file.
A URL's password never leaves this module unredacted: ``redact`` is what gets shown.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from taskito import _settings as settings

_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
BACKENDS = ("sqlite", "postgres")


def is_url(value: str | None) -> bool:
    return value is not None and value.startswith(_SCHEMES)


def redact(url: str) -> str:
    """``url`` with the password of ``user:password@`` and any ``password=`` replaced."""
    scheme_end = url.find("://")
    if scheme_end >= 0:
        rest = url[scheme_end + 3 :]
        # The last "@" ends the user info: a password may hold "/", "?" or "@" unescaped.
        # (An "@" later in the query hides more than the password, never less.)
        at = rest.rfind("@")
        colon = rest.find(":", 0, at) if at >= 0 else -1
        if colon >= 0:
            url = url[: scheme_end + 3 + colon + 1] + "***" + url[scheme_end + 3 + at :]
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


@dataclass(frozen=True)
class Store:
    backend: str
    db_path: str
    db_url: str | None = None
    schema: str = "taskito"
    pool_size: int | None = None
    notify: bool = True

    @property
    def shown(self) -> str:
        """What logs, banners and ``repr`` show: the path, or the URL without password."""
        return redact(self.db_url) if self.db_url is not None else self.db_path


def _env_notify() -> bool | None:
    raw = os.environ.get("TASKITO_PG_NOTIFY", "").strip().lower()
    if raw == "":
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise settings.EnvError(f"environment variable TASKITO_PG_NOTIFY={raw!r} is invalid: expected 0 or 1")


def resolve(
    db_path: str | None,
    backend: str | None,
    db_url: str | None,
    schema: str,
    pool_size: int | None,
    notify: bool | None,
) -> Store:
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f'backend must be "sqlite" or "postgres", got {backend!r}')
    if db_url is not None and not is_url(db_url):
        raise ValueError(f"db_url must start with postgresql:// or postgres://, got {redact(db_url)!r}")
    if is_url(db_path):
        db_url, db_path = db_path, None
    if db_url is None and db_path is None:
        env_path = settings.env_db_path()
        env_url = os.environ.get("TASKITO_DB_URL", "").strip() or None
        if backend == "postgres" or (backend is None and env_path is None and env_url is not None):
            if env_url is not None and not is_url(env_url):
                raise settings.EnvError(
                    "environment variable TASKITO_DB_URL is invalid: "
                    f"expected a postgresql:// URL, got {redact(env_url)!r}"
                )
            db_url = env_url
        else:
            db_path = env_path
    if db_url is not None:
        if backend == "sqlite":
            raise ValueError("backend='sqlite' takes db_path, not a postgresql:// URL")
        backend = "postgres"
    backend = backend or "sqlite"
    if backend == "postgres" and db_url is None:
        raise ValueError(
            "backend='postgres' needs db_url='postgresql://user:password@host:5432/db' or TASKITO_DB_URL"
        )
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema) or schema.startswith("pg_"):
        raise ValueError(f"schema must be an identifier (letters, digits, _), got {schema!r}")
    if pool_size is not None:
        settings.check_int("pool_size", pool_size, minimum=1)
    if notify is None:
        notify = _env_notify()
    return Store(
        backend=backend,
        db_path=db_path if db_path is not None else settings.DEFAULT_DB_PATH,
        db_url=db_url,
        schema=schema,
        pool_size=pool_size,
        notify=True if notify is None else bool(notify),
    )
