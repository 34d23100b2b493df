"""Setting up the ``taskito`` logger for an application or a worker process.

taskito itself only attaches a ``NullHandler``: where records go is the application's
choice. ``configure()`` is the one-call choice for scripts and workers: a stream handler with
a readable format on the ``taskito`` logger, added once however often it is called.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_DATEFMT",
    "configure",
    "silence_asyncio_pipe_noise",
    "restore_asyncio_pipe_noise",
]

DEFAULT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DEFAULT_DATEFMT = "%Y-%m-%d %H:%M:%S"

_LOGGER_NAME = "taskito"
# Marks the handler configure() added, so a second call finds it instead of adding another.
_HANDLER_FLAG = "_taskito_configured"


def _level(level: int | str | None) -> int:
    if level is None:
        level = os.environ.get("TASKITO_LOG_LEVEL", "").strip() or logging.INFO
    if isinstance(level, bool):
        raise ValueError(f"level must be a logging level name or number, got {level!r}")
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    value = logging.getLevelName(name)
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (expected DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return value


def configure(level: int | str | None = None, *, stream: IO[str] | None = None) -> logging.Logger:
    """Sends the ``taskito`` logger's records to ``stream`` (default: stderr) at ``level``
    (a number or a name; default ``TASKITO_LOG_LEVEL``, else INFO) and returns the logger.
    Calling it again changes the level and stream but adds no second handler."""
    logger = logging.getLogger(_LOGGER_NAME)
    logger.setLevel(_level(level))
    handler = next((h for h in logger.handlers if getattr(h, _HANDLER_FLAG, False)), None)
    target = stream if stream is not None else sys.stderr
    if handler is None:
        handler = logging.StreamHandler(target)
        setattr(handler, _HANDLER_FLAG, True)
        handler.setFormatter(logging.Formatter(DEFAULT_FORMAT, DEFAULT_DATEFMT))
        logger.addHandler(handler)
    elif isinstance(handler, logging.StreamHandler) and handler.stream is not target:
        handler.setStream(target)
    return logger


class _PipeNoiseFilter(logging.Filter):
    """Drops asyncio's reports of pipes and sockets closed under it at shutdown (a child
    process or a connection gone first): noise, not errors of the application."""

    _NOISE = ("Broken pipe", "Connection reset by peer", "Fatal write error on pipe", "Fatal error on pipe")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            if isinstance(record.exc_info[1], (BrokenPipeError, ConnectionResetError)):
                return False
        return not any(n in text for n in self._NOISE)


_pipe_filter = _PipeNoiseFilter()


def silence_asyncio_pipe_noise() -> None:
    """Hides asyncio's broken-pipe and connection-reset reports (see ``_PipeNoiseFilter``)."""
    logger = logging.getLogger("asyncio")
    if _pipe_filter not in logger.filters:
        logger.addFilter(_pipe_filter)


def restore_asyncio_pipe_noise() -> None:
    """Undoes ``silence_asyncio_pipe_noise``."""
    logging.getLogger("asyncio").removeFilter(_pipe_filter)
