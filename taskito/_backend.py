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


_HOST = re.compile(r"^[A-Za-z0-9.\-:\[\],%_]*$")
_KEY = re.compile(r"^[A-Za-z0-9_]+=")
_SECRETS = ("password", "sslpassword")


def _follows_userinfo(rest: str) -> bool:
    """Whether ``rest`` reads as ``host[:port][/database][?key=value...]``."""
    before_query, _, query = rest.partition("?")
    host = before_query.split("/", 1)[0]
    return bool(_HOST.match(host)) and "@" not in before_query and (query == "" or bool(_KEY.match(query)))


def _userinfo_end(url: str, start: int) -> int:
    """Where ``user:password`` ends: the last ``@`` followed by what follows user info in a
    URL, else the last ``@`` (too little shown, never too much); -1 without one."""
    ats = [i for i in range(start, len(url)) if url[i] == "@"]
    for at in reversed(ats):
        if _follows_userinfo(url[at + 1 :]):
            return at
    return ats[-1] if ats else -1


def redact(url: str) -> str:
    """``url`` with the password of ``user:password@`` and every ``password=`` and
    ``sslpassword=`` value replaced by ``***``, whatever characters they hold.

    The same rule as the engine's ``redact_url`` (``rust/storage/postgres/pg_url.rs``): a
    password may hold ``@``, ``/``, ``?``, ``:`` unescaped, and a secret value ``&``.
    """
    scheme_end = url.find("://")
    if scheme_end < 0:
        return url
    start = scheme_end + 3
    at = _userinfo_end(url, start)
    if at >= 0:
        colon = url.find(":", start, at)
        if colon >= 0:
            url = url[: colon + 1] + "***" + url[at:]
            at = colon + 4
    query = url.find("?", max(at, start))
    if query < 0:
        return url
    shown: list[str] = []
    in_secret = False
    for pair in url[query + 1 :].split("&"):
        if in_secret and not _KEY.match(pair):
            continue
        key = pair.split("=", 1)[0]
        in_secret = key.lower() in _SECRETS
        shown.append(f"{key}=***" if in_secret else pair)
    return url[: query + 1] + "&".join(shown)


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
