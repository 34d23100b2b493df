"""A prefork pool's child process: ``python -m taskito.worker.prefork_child --app m:q --fds R,W``.
It imports the app, says it is ready, then runs one job per frame read from fd R with the
same dispatch function as a worker thread (hooks, ``current_job``, progress written to the
database from here) and writes each answer to fd W. Job events are not fired here: they go
to the parent, which fires them (see ``_EventRelay``). The frame format is described in
``rust/prefork/frame.rs``. It exits at the end of its job stream (recycling, shutdown) or
when its parent dies; the parent kills it at a job's timeout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import struct
import sys
import threading
import time
import traceback
import types
from typing import Any, BinaryIO

_LEN = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")


def _read_exact(f: BinaryIO, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = f.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _send(f: BinaryIO, body: bytes) -> None:
    f.write(_LEN.pack(len(body)) + body)
    f.flush()


def _field(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data


def _text(value: str) -> bytes:
    return _field(value.encode("utf-8", "replace"))


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def raw(self) -> bytes:
        (n,) = _LEN.unpack_from(self.data, self.pos)
        start = self.pos + 4
        self.pos = start + n
        return self.data[start : self.pos]

    def text(self) -> str:
        return self.raw().decode("utf-8")

    def int(self) -> int:
        (v,) = _I64.unpack_from(self.data, self.pos)
        self.pos += 8
        return v


class _EventRelay:
    """Stands in for the child's event thread: every event the app raises here goes to the
    parent instead. Closing events (a job completed, failed, ...) are held and sent with
    the job's answer, so the parent fires them only once the engine has settled the job
    and not at all if this child dies first; the others (started, a job enqueued by a
    task) are sent at once. ``send`` is locked: a task's own thread may enqueue too."""

    _CLOSING = frozenset(
        {
            "job.completed",
            "job.failed",
            "job.retrying",
            "job.dead",
            "job.cancelled",
        }
    )

    def __init__(self, answers: BinaryIO) -> None:
        self._answers = answers
        self._lock = threading.Lock()
        self._held: list[bytes] = []

    def send(self, body: bytes) -> None:
        with self._lock:
            _send(self._answers, body)

    def emit(self, event_type: Any, payload: dict[str, Any]) -> None:
        name = getattr(event_type, "value", event_type)
        text = _text(json.dumps([name, payload], default=str))
        if name in self._CLOSING:
            with self._lock:
                self._held.append(text)
        else:
            self.send(b"V" + text)

    def answer(self, body: bytes) -> None:
        """Sends a job's answer with the closing events held since the last one."""
        with self._lock:
            held, self._held = self._held, []
            _send(self._answers, body + _LEN.pack(len(held)) + b"".join(held))

    def install(self, queue: Any) -> None:
        # Both are what emitting code checks and calls (`taskito/events.py`); the app's
        # own callbacks, if it registered any, stay unused in this process.
        queue._dispatcher = self
        queue._emit = self.emit


def _main_alias(queue: Any, module: types.ModuleType, loaded_as: str) -> None:
    """Names made from ``__module__`` say ``__main__`` in the parent; here the script ran
    under ``loaded_as``. Each such task is registered under the parent's name too, and the
    script's classes and functions say ``__main__`` again, so that a result pickled here
    refers to them as the parent knows them."""
    for value in list(vars(module).values()):
        if isinstance(value, (type, types.FunctionType)) and getattr(value, "__module__", None) == loaded_as:
            try:
                value.__module__ = "__main__"
            except (AttributeError, TypeError):
                pass
    prefix = loaded_as + "."
    for name, task in list(queue._tasks.items()):
        if name.startswith(prefix):
            queue._tasks.setdefault("__main__." + name[len(prefix) :], task)


def _load(args: argparse.Namespace) -> Any:
    from taskito.app import Queue
    from taskito.cli.common import load_app

    if args.app:
        return load_app(args.app)
    if args.main_module:
        module = importlib.import_module(args.main_module)
        loaded_as = args.main_module
    else:
        # As multiprocessing's spawn does: the script runs under another name (its
        # `if __name__ == "__main__":` block stays out) and stands in for `__main__`.
        module = types.ModuleType("__mp_main__")
        module.__file__ = args.main_path
        sys.modules["__mp_main__"] = module
        with open(args.main_path, "rb") as f:
            code = compile(f.read(), args.main_path, "exec")
        exec(code, module.__dict__)
        loaded_as = "__mp_main__"
    sys.modules["__main__"] = module
    queue = getattr(module, args.attr, None)
    if not isinstance(queue, Queue):
        raise LookupError(f"{loaded_as}.{args.attr} is not a Queue in the child process")
    _main_alias(queue, module, loaded_as)
    return queue


def _watch_parent() -> None:
    """Exits when the parent is gone (its pipes may be held open by a stuck job)."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _configure_logging() -> None:
    level = os.environ.pop("TASKITO_PREFORK_LOG_LEVEL", None)
    if level is None:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[taskito] %(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("taskito")
    logger.addHandler(handler)
    logger.setLevel(int(level))
    logger.propagate = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="taskito.worker.prefork_child")
    parser.add_argument("--app")
    parser.add_argument("--main-module")
    parser.add_argument("--main-path")
    parser.add_argument("--attr")
    parser.add_argument("--fds", required=True)
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole process group: the parent drains, the children go on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rfd, wfd = (int(x) for x in args.fds.split(","))
    jobs = os.fdopen(rfd, "rb")
    answers = os.fdopen(wfd, "wb")
    path = os.environ.pop("TASKITO_PREFORK_SYS_PATH", None)
    if path:
        sys.path[:] = json.loads(path)
    _configure_logging()

    from taskito.worker import prefork as _prefork
    from taskito.worker.dispatch import make_dispatch

    _prefork.CHILD_LOADING = True
    try:
        queue = _load(args)
    except BaseException as exc:
        detail = f"{type(exc).__name__}: {exc}"
        _send(answers, b"E" + _text(f"cannot load the app in a child process: {detail}"))
        os._exit(1)
    finally:
        _prefork.CHILD_LOADING = False
    threading.Thread(target=_watch_parent, name="taskito-parent-watch", daemon=True).start()
    _send(answers, b"R")
    relay = _EventRelay(answers)
    relay.install(queue)
    dispatch = make_dispatch(queue)
    queue._worker_hooks("on_worker_start")
    while True:
        head = _read_exact(jobs, 4)
        if head is None:
            break
        body = _read_exact(jobs, _LEN.unpack(head)[0])
        if body is None:
            break
        r = _Reader(body)
        r.pos = 1  # kind J
        task_name, payload, job_id, queue_name = r.text(), r.raw(), r.text(), r.text()
        retry_count, max_retries, thread_id = r.int(), r.int(), r.text()
        parents = None
        if r.pos < len(body):  # a canvas step: its parents' results follow
            mode, count = r.int(), r.int()
            parents = (mode, [r.raw() if r.int() else None for _ in range(count)])
        # Timed as a worker thread times its dispatch: the parent's metrics count it.
        started = time.perf_counter()
        try:
            answer = dispatch(
                task_name, payload, job_id, queue_name, retry_count, max_retries, thread_id, parents
            )
        except BaseException as exc:  # dispatch answers for tasks; this is taskito's own fault
            answer = (False, f"{type(exc).__name__}: {exc}", traceback.format_exc(), True)
        took = _F64.pack(time.perf_counter() - started)
        if answer[0]:
            relay.answer(b"C" + _field(answer[1]) + took)
        else:
            if len(answer) > 4:
                # The task's retry rule: its kind, delay in ms and metadata.
                kind, delay, metadata = answer[4]
                rule = b"\x02" + bytes((kind,)) + _text(str(delay)) + _text(metadata or "")
            else:
                rule = b"\x01" if answer[3] else b"\x00"
            relay.answer(b"F" + _text(answer[1]) + _text(answer[2]) + rule + took)
    queue._worker_hooks("on_worker_stop")
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: a task's non-daemon threads must not keep a retired child.
    os._exit(0)


if __name__ == "__main__":
    main()
