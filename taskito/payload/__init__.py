"""How calls and results become stored bytes: each task's plan (``plan``) and the checks
that serializers and codecs share (``checks``). The public serializers and codecs stay in
``taskito.serializers`` and ``taskito.codecs``; both import their checks from here."""
