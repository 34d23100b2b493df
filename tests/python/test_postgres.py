"""PostgreSQL-only behaviour: concurrent first starts, connection economy, connection
errors without the password, recovery after kill -9, a server restart under load, and
exactly-once draining by several worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pg
import pytest
from conftest import ROOT

import taskito
from taskito import Queue

pytestmark = pytest.mark.skipif(
    pg.server_url() is None, reason="no PostgreSQL server: set TASKITO_TEST_PG_URL (see tests/pg_server.sh)"
)


@pytest.fixture
def url() -> Iterator[str]:
    with pg.fresh_database() as u:
        yield u


def password_of(url: str) -> str:
    userinfo = url.split("://", 1)[1].split("@", 1)[0]
    return userinfo.split(":", 1)[1]


APP = textwrap.dedent(
    """
    import os, time
    from taskito import Queue

    queue = Queue(db_path=os.environ["DB"], workers=int(os.environ.get("THREADS", "4")),
                  scheduler_poll_interval_ms=20)

    @queue.task(max_retries=0)
    def mark(i):
        with open(os.path.join(os.environ["OUT"], f"{os.getpid()}.txt"), "a") as f:
            f.write(f"{i}\\n")

    @queue.task(max_retries=0)
    def stall(i):
        mark(i)
        if os.environ.get("STALL"):
            time.sleep(600)
    """
)


def write_app(tmp_path: Path) -> None:
    (tmp_path / "pgapp.py").write_text(APP)


def start_worker(tmp_path: Path, url: str, **env: str) -> subprocess.Popen[str]:
    full = {
        **os.environ,
        "DB": url,
        "OUT": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        **env,
    }
    n = len(list(tmp_path.glob("worker-*.log")))
    with open(tmp_path / f"worker-{n}.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-c", "import pgapp; pgapp.queue.run_worker()"],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


def runs(tmp_path: Path) -> Counter[int]:
    counts: Counter[int] = Counter()
    for f in tmp_path.glob("*.txt"):
        counts.update(int(line) for line in f.read_text().split())
    return counts


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_until(cond, timeout: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def test_concurrent_first_starts_migrate_once(url: str) -> None:
    code = (
        "import sys; from taskito import Queue; q = Queue(db_path=sys.argv[1]); print(q.stats()['pending'])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == "0"
    versions = pg.psql("SELECT version FROM taskito.schema_version ORDER BY version", url)
    assert versions.split() == [str(v) for v in range(1, len(versions.split()) + 1)]
    assert len(versions.split()) >= 2  # every migration recorded once, none twice


def test_schema_isolates_applications(url: str) -> None:
    with Queue(db_url=url, schema="app_a") as a, Queue(db_url=url, schema="app_b") as b:
        a.enqueue("t", args=(1,))
        assert a.stats()["pending"] == 1
        assert b.stats()["pending"] == 0
    assert pg.psql("SELECT count(*) FROM app_a.jobs", url) == "1"


def test_sixty_queues_in_one_process_stay_within_the_server_limit(url: str) -> None:
    queues = [Queue(db_url=url, schema=f"s{i % 3}") for i in range(60)]
    try:
        for q in queues:
            q.enqueue("t", args=(1,))
            q.stats()
        held = int(
            pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{url.rsplit('/', 1)[1]}'", url)
        )
        # One idle connection per queue at most (plus psql's own).
        assert held <= 61
    finally:
        for q in queues:
            q.close()
            q.close()
    db = url.rsplit("/", 1)[1]
    left = int(
        pg.psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()", url
        )
    )
    assert left == 0


def test_close_releases_connections_and_the_queue_reconnects(url: str) -> None:
    db = url.rsplit("/", 1)[1]

    def held() -> int:
        return int(
            pg.psql(
                f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()",
                url,
            )
        )

    with Queue(db_url=url) as q:
        q.enqueue("t", args=(1,))
        assert held() >= 1
    assert wait_until(lambda: held() == 0, 5)
    q.enqueue("t", args=(2,))  # a closed queue reconnects on demand
    assert q.stats()["pending"] == 2
    q.close()


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda u: u.replace(password_of(u), password_of(u) + "-wrong"), "password authentication failed"),
        (lambda u: u.rsplit("/", 1)[0] + "/no_such_db", "no_such_db"),
        (lambda u: "postgresql://user:topsecretpw@10.255.255.1:5432/app", "10.255.255.1:5432/app"),
        (lambda u: "postgresql://user:topsecretpw@127.0.0.1:1/app", "127.0.0.1:1/app"),
        (lambda u: "postgresql://user:topsecretpw@127.0.0.1:notaport/app", "malformed"),
    ],
    ids=["wrong-password", "missing-database", "unreachable-host", "refused-port", "malformed-url"],
)
def test_connection_errors_are_quick_and_hide_the_password(url: str, mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    bad = mutate(url)
    secret = password_of(bad)
    start = time.monotonic()
    with pytest.raises(taskito.DatabaseError) as info:
        Queue(db_url=bad)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert needle in message
    assert secret not in message
    assert secret not in repr(info.value)


def test_password_never_shown(url: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = password_of(url)
    with Queue(db_url=url) as q:
        assert secret not in repr(q)
        assert secret not in q.db_path
        assert "***" in repr(q)


def test_env_url_between_path_and_default(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKITO_DB_URL", url)
    monkeypatch.delenv("TASKITO_DB_PATH", raising=False)
    with Queue() as q:
        assert q.backend == "postgres"
    monkeypatch.setenv("TASKITO_DB_PATH", str(tmp_path / "x.db"))
    with Queue() as q:
        assert q.backend == "sqlite"
    with Queue(db_url=url) as q:
        assert q.backend == "postgres"


def test_wake_on_notify_and_without(url: str) -> None:
    """Another process's enqueue wakes an idle worker at once (LISTEN/NOTIFY); with
    notify=False the poll alone picks it up."""
    for notify in (True, False):
        q = Queue(
            db_url=url,
            schema=f"wake_{int(notify)}",
            workers=1,
            scheduler_poll_interval_ms=2000,
            notify=notify,
        )
        done = threading.Event()

        @q.task(name="ping")
        def ping(done: threading.Event = done) -> None:
            done.set()

        t = threading.Thread(target=q.run_worker, daemon=True)
        t.start()
        time.sleep(1.5)  # let the worker go idle and listen
        producer = Queue(db_url=url, schema=f"wake_{int(notify)}")
        start = time.monotonic()
        producer.enqueue("ping")
        assert done.wait(10)
        took = time.monotonic() - start
        if notify:
            assert took < 1.0, took
        q.shutdown()
        t.join(30)
        producer.close()
        q.close()


def test_kill_9_orphan_reruns_within_15_seconds(url: str, tmp_path: Path) -> None:
    write_app(tmp_path)
    q = Queue(db_url=url)
    victim = start_worker(tmp_path, url, STALL="1", THREADS="1")
    try:
        job = q.enqueue("pgapp.stall", args=(7,))
        assert wait_until(lambda: runs(tmp_path)[7] == 1, 30)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed = time.monotonic()
        rescuer = start_worker(tmp_path, url, THREADS="1")
        try:
            assert job.result(timeout=30) is None
            recovered_after = time.monotonic() - killed
            print(f"orphan finished {recovered_after:.1f} s after kill -9")
            assert recovered_after < 15, recovered_after
        finally:
            stop([rescuer])
    finally:
        stop([victim])
        q.close()
    assert runs(tmp_path)[7] == 2
    assert any("stopped heartbeating" in e["error"] for e in q.job_errors(job.id))


def test_four_worker_processes_drain_20000_jobs_exactly_once(url: str, tmp_path: Path) -> None:
    write_app(tmp_path)
    total = 20_000
    with Queue(db_url=url) as q:
        for start in range(0, total, 5000):
            q.enqueue_many("pgapp.mark", [(i,) for i in range(start, start + 5000)])
        procs = [start_worker(tmp_path, url, THREADS="2") for _ in range(4)]
        try:
            assert wait_until(lambda: q.stats()["completed"] == total, 240, step=0.5), q.stats()
        finally:
            stop(procs)
        counts = runs(tmp_path)
        assert len(counts) == total
        assert set(counts.values()) == {1}
        assert len({f.name for f in tmp_path.glob("*.txt")}) >= 2


@pytest.mark.skipif(not pg.can_control_server(), reason="needs the test server's pg_ctl (tests/pg_server.sh)")
def test_server_restart_under_load_loses_nothing(url: str, tmp_path: Path) -> None:
    write_app(tmp_path)
    total = 6000
    q = Queue(db_url=url)
    q.enqueue_many("pgapp.mark", [(i,) for i in range(total)])
    procs = [start_worker(tmp_path, url, THREADS="2") for _ in range(2)]
    try:
        # Both workers up and draining, then the server restarts under them.
        assert wait_until(
            lambda: len(list(tmp_path.glob("*.txt"))) == 2 and sum(runs(tmp_path).values()) > 300, 60
        )
        pg.server_ctl("restart")
        assert wait_until(lambda: _completed(q) == total, 90, step=0.5), (
            q.stats(),
            q.list_jobs(status="running"),
            [(j.id, q.job_errors(j.id)) for j in q.list_jobs(status="failed")],
            [log.read_text()[-3000:] for log in sorted(tmp_path.glob("worker-*.log"))],
        )
    finally:
        stop(procs)
        q.close()
    counts = runs(tmp_path)
    assert len(counts) == total
    twice = [i for i, n in counts.items() if n > 1]
    print(f"server restart mid-drain: {len(counts)} of {total} jobs ran, {len(twice)} twice")
    # A job runs twice only if its claim died with the server mid-run and was recovered.
    assert len(twice) <= 8, twice
    for p, log in zip(procs, sorted(tmp_path.glob("worker-*.log"))):
        assert p.returncode == 0, log.read_text()


def _completed(q: Queue) -> int:
    try:
        return q.stats()["completed"]
    except taskito.DatabaseError:
        return -1
