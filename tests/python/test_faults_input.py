"""Bad input gets a clear error, fast, and nothing is damaged: unusable database paths and
files, invalid options, unpicklable arguments and results, unknown tasks, and payloads up to
64 MiB."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from faultkit import ROOT

from taskito import DatabaseError, Queue, SerializationError, TaskFailedError, TaskitoError

MiB = 1024 * 1024


def make_taskito_db(path: Path, jobs: int = 300) -> None:
    """A real queue database with some jobs, written by a process that then exits cleanly
    (so its write-ahead log is folded into the file)."""
    code = (
        "import os, sys\n"
        "from taskito import Queue\n"
        "q = Queue(db_path=sys.argv[1])\n"
        "q.enqueue_many('t', [(os.urandom(2000),) for _ in range(int(sys.argv[2]))])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(path), str(jobs)], check=True, env=env, timeout=60)
    assert not Path(f"{path}-wal").exists()


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in a folder with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def refused(path: Path | str, *causes: str) -> DatabaseError:
    """Opens a Queue on ``path``; asserts a fast DatabaseError naming the path and a cause."""
    start = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        Queue(db_path=str(path))
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed  # a hang-catcher; the target is well under 2 s
    message = str(info.value)
    assert str(path) in message
    assert any(c in message for c in causes), message
    assert isinstance(info.value, TaskitoError)
    return info.value


# -- database paths and files --------------------------------------------------------------


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inside.txt").write_text("keep")
    before = snapshot(tmp_path)
    refused(tmp_path, "directory")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "content",
    [
        b"name,value\n" * 500,
        bytes(range(256)) * 64,
        b"SQLite format 3\x00" + b"\xa5" * 4000,  # the magic, then garbage
        b"SQLite",  # shorter than the magic
    ],
    ids=["text", "binary", "sqlite-magic-then-garbage", "short"],
)
def test_a_foreign_file_is_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(content)
    os.utime(target, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = snapshot(tmp_path)
    refused(target, "not a SQLite database", "damaged")
    assert snapshot(tmp_path) == before  # same bytes, same mtime, no -wal/-shm left behind


def _overwrite_middle(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek((size // 2) // 4096 * 4096)
        f.write(b"\xff" * 8192)


def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _truncate_to_first_page(path: Path) -> None:
    os.truncate(path, 4096)


def _truncate_inside_header(path: Path) -> None:
    os.truncate(path, 60)


def _scramble_header_fields(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(40)
        f.write(b"\xee" * 40)


@pytest.mark.parametrize(
    "damage",
    [
        _overwrite_middle,
        _truncate_half,
        _truncate_to_first_page,
        _truncate_inside_header,
        _scramble_header_fields,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_damaged_taskito_database_is_refused_and_left_untouched(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    db = tmp_path / "queue.db"
    make_taskito_db(db)
    damage(db)
    before = snapshot(tmp_path)
    refused(db, "damaged", "not a SQLite database", "unsupported file format", "malformed")
    assert snapshot(tmp_path) == before


def test_a_path_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    before = snapshot(tmp_path)
    refused(plain / "q.db", "is a file")
    refused(plain / "deeper" / "q.db", "is a file")
    assert snapshot(tmp_path) == before


# Runs as root drop to "nobody" only after importing everything: the interpreter lives under
# a folder "nobody" may not enter, and root ignores permissions altogether.
READ_ONLY_PROBE = """
import json, os, sys, time
from taskito import Queue, TaskitoError

if os.geteuid() == 0:
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    except OSError as exc:
        print(json.dumps({"cannot_drop": str(exc)}))
        sys.exit(0)
out = {}
for path in sys.argv[1:]:
    start = time.monotonic()
    try:
        Queue(db_path=path)
        out[path] = {"opened": True}
    except Exception as exc:
        out[path] = {"type": type(exc).__name__, "taskito": isinstance(exc, TaskitoError),
                     "message": str(exc), "elapsed": time.monotonic() - start}
print(json.dumps(out))
"""


def test_read_only_locations_are_refused_and_left_untouched() -> None:
    base = Path(tempfile.mkdtemp(prefix="taskito-ro-"))
    try:
        base.chmod(0o755)  # "nobody" must reach inside
        ro = base / "ro"
        ro.mkdir()
        make_taskito_db(ro / "mine.db", jobs=20)  # writable by the user, in a read-only folder
        make_taskito_db(ro / "theirs.db", jobs=20)  # readable, not writable by the user
        (ro / "theirs.db").chmod(0o644)
        make_taskito_db(ro / "private.db", jobs=20)  # another user's: created 0600
        rw = base / "rw"
        rw.mkdir()
        make_taskito_db(rw / "locked.db", jobs=20)  # a read-only file in a writable folder
        if os.geteuid() == 0:
            os.chown(ro / "mine.db", 65534, 65534)
        (rw / "locked.db").chmod(0o444)
        rw.chmod(0o777)
        ro.chmod(0o555)
        cases = {
            str(ro / "new.db"): "Permission denied",
            str(ro / "sub" / "new.db"): "Permission denied",
            str(ro / "mine.db"): "read-only",
            str(ro / "theirs.db"): "read-only",
            str(ro / "private.db"): "Permission denied",
            str(rw / "locked.db"): "read-only",
        }
        before = {d: snapshot(d) for d in (ro, rw)}
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-c", READ_ONLY_PROBE, *cases],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd="/",
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if "cannot_drop" in out:
            pytest.skip(f"cannot drop root privileges here: {out['cannot_drop']}")
        for path, cause in cases.items():
            got = out[path]
            assert got.get("type") == "DatabaseError" and got["taskito"], (path, got)
            assert path in got["message"] and cause in got["message"], (path, got)
            assert got["elapsed"] < 10
        assert {d: snapshot(d) for d in (ro, rw)} == before
        assert not (ro / "sub").exists()
    finally:
        for d in (base / "ro", base / "rw"):
            if d.exists():
                d.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"workers": -1}, "workers"),
        ({"workers": "2"}, "workers"),
        ({"default_timeout": 0}, "default_timeout"),
        ({"default_timeout": -5}, "default_timeout"),
        ({"default_priority": "high"}, "default_priority"),
        ({"default_priority": 1.5}, "default_priority"),
        ({"default_retry": -1}, "default_retry"),
        ({"drain_timeout": -1}, "drain_timeout"),
        ({"scheduler_poll_interval_ms": 0}, "scheduler_poll_interval_ms"),
        ({"result_ttl": -1}, "result_ttl"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"stale_after": -1}, "stale_after"),
    ],
)
def test_invalid_queue_options_are_refused_before_touching_the_disk(
    tmp_path: Path, kwargs: dict, option: str
) -> None:
    path = tmp_path / "sub" / "q.db"
    with pytest.raises(ValueError, match=option):
        Queue(db_path=str(path), **kwargs)
    assert not path.parent.exists()


TASK_OPTIONS = [
    ({"timeout": 0}, "timeout"),
    ({"timeout": -1}, "timeout"),
    ({"priority": "high"}, "priority"),
    ({"priority": 2.5}, "priority"),
    ({"queue": ""}, "queue"),
    ({"queue": "   "}, "queue"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 1.5}, "max_retries"),
]


@pytest.mark.parametrize("kwargs, option", TASK_OPTIONS)
def test_invalid_task_options_are_refused(queue: Queue, kwargs: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):

        @queue.task(**kwargs)
        def bad() -> None:
            pass

    assert queue.tasks == {}


@pytest.mark.parametrize("kwargs, option", TASK_OPTIONS + [({"delay": -1}, "delay")])
def test_invalid_job_options_are_refused_and_nothing_is_stored(
    queue: Queue, kwargs: dict, option: str
) -> None:
    @queue.task()
    def fine() -> None:
        pass

    with pytest.raises(ValueError, match=option):
        fine.apply_async(**kwargs)
    with pytest.raises(ValueError, match=option):
        queue.enqueue(fine.name, **kwargs)
    with pytest.raises(ValueError, match=option):
        queue.enqueue_many(fine.name, [(), ()], **kwargs)
    assert sum(queue.stats().values()) == 0


def test_invalid_worker_options_are_refused(queue: Queue) -> None:
    with pytest.raises(ValueError, match="workers"):
        queue.run_worker(workers=-1)
    with pytest.raises(ValueError, match="max_jobs"):
        queue.run_worker(max_jobs=0)
    with pytest.raises(ValueError, match="queues"):
        queue.run_worker(queues=[""])
    assert queue.workers() == []


# -- arguments and results ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lock", "file", "generator"])
def test_unpicklable_arguments_raise_at_enqueue_and_store_nothing(
    queue: Queue, kind: str, tmp_path: Path
) -> None:
    @queue.task()
    def take(*a: Any, **kw: Any) -> None:
        pass

    handle = open(tmp_path / "f.txt", "w")  # noqa: SIM115 - closed below
    value = {
        "lock": threading.Lock(),
        "file": handle,
        "generator": (i for i in range(3)),
    }[kind]
    args, kwargs = ((), {"value": value}) if kind == "file" else ((value,), {})
    try:
        _check_unpicklable(queue, take, args, kwargs)
    finally:
        handle.close()


def _check_unpicklable(queue: Queue, take: Any, args: tuple, kwargs: dict) -> None:
    with pytest.raises(SerializationError, match=take.name) as info:
        take.delay(*args, **kwargs)
    assert isinstance(info.value, TaskitoError)
    with pytest.raises(SerializationError):
        queue.enqueue_many(take.name, [(1,), args, (2,)], [{}, kwargs, {}])  # all or nothing
    assert sum(queue.stats().values()) == 0


def test_arguments_and_results_of_64_mib_round_trip(queue: Queue, worker) -> None:
    blob = bytes(range(256)) * (64 * MiB // 256)

    @queue.task()
    def echo(data: bytes) -> bytes:
        return data

    @queue.task()
    def produce(n: int) -> bytes:
        return b"\x5a" * n

    assert echo.delay(blob).result(timeout=120) == blob
    assert produce.delay(64 * MiB).result(timeout=120) == b"\x5a" * (64 * MiB)


def test_an_unregistered_task_fails_naming_it_and_the_worker_goes_on(queue: Queue, worker) -> None:
    @queue.task()
    def known(x: int) -> int:
        return x + 1

    ghost = queue.enqueue("nowhere.ghost_task", args=(1,))
    after = known.delay(1)
    with pytest.raises(TaskFailedError, match="nowhere.ghost_task"):
        ghost.result(timeout=30)
    assert ghost.status == "failed"
    assert "nowhere.ghost_task" in ghost.error and "not registered" in ghost.error
    assert len(ghost.errors) == 1  # not retried: another run cannot fix it
    assert after.result(timeout=30) == 2
    assert known.delay(41).result(timeout=30) == 42
    assert worker.thread.is_alive()


def test_an_unpicklable_result_fails_saying_so_and_the_worker_goes_on(queue: Queue, worker) -> None:
    @queue.task()
    def gives_lock() -> Any:
        return threading.Lock()

    @queue.task()
    def gives_generator() -> Any:
        return (i for i in range(3))

    @queue.task()
    def fine() -> str:
        return "ok"

    for task in (gives_lock, gives_generator):
        job = task.delay()
        with pytest.raises(TaskFailedError, match="cannot be serialized"):
            job.result(timeout=30)
        assert job.status == "failed"
        assert "SerializationError" in job.error
    assert fine.delay().result(timeout=30) == "ok"
    assert worker.thread.is_alive()


def test_another_applications_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "app.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO users (name) VALUES ('ada')")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(DatabaseError) as info:
        Queue(db_path=str(path))
    assert str(path) in str(info.value) and "another application" in str(info.value)
    assert "users" in str(info.value)
    assert path.read_bytes() == before
