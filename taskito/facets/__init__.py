"""The method groups of ``Queue``, one module per area, named like the engine's binding
files (``rust/py/queue_*.rs``). ``base`` declares, once and typed, the state they share;
``taskito.app.Queue`` lists the groups and sets that state up."""
