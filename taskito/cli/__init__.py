"""The ``taskito`` command line (``python -m taskito`` and the ``taskito`` script)."""

from taskito.cli.common import CommandError, load_app
from taskito.cli.main import build_parser, main

__all__ = ["main", "build_parser", "load_app", "CommandError"]
