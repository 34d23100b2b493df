"""What runs inside a worker: the dispatch that runs one job on an engine thread
(``dispatch``), the event loop of ``async def`` tasks (``async_pool``), the prefork pool's
parent half (``prefork``) and child process (``prefork_child``), and the two-step signal
handling of a worker run in the main thread (``signals``)."""
