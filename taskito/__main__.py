"""``python -m taskito`` is the ``taskito`` command."""

from taskito.cli import main

raise SystemExit(main())
