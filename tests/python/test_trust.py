"""The database is a trust boundary: workers unpickle what it holds. A new database file (and
its -wal and -shm files) is private to its owner, and with a secret key every payload and
result is signed, so bytes written by anyone else are refused before anything reads them."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cli_support import run_cli, write_app
from dbtools import args_context, flip, get_blob, result_context, set_blob, signed

from taskito import CryptoError, DatabaseError, HmacCodec, Queue, SerializationError, TaskFailedError

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(path: str) -> dict[str, int]:
    return {
        suffix or "db": os.stat(path + suffix).st_mode & 0o777
        for suffix in ("", "-wal", "-shm")
        if os.path.exists(path + suffix)
    }


def new_queue(path: str, **kw: Any) -> Queue:
    return Queue(db_path=path, workers=2, scheduler_poll_interval_ms=10, **kw)


# -- file modes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_a_new_database_and_its_wal_and_shm_are_private(tmp_path: Path, mask: int) -> None:
    path = str(tmp_path / "q.db")
    with umask(mask):
        q = new_queue(path)
        q.enqueue("t", args=(1,))
    got = modes(path)
    assert set(got) == {"db", "-wal", "-shm"}, got
    assert got == {"db": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_file_mode_sets_the_bits_whatever_the_umask(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    with umask(0o077):
        q = new_queue(path, file_mode=0o660)
        q.enqueue("t", args=(1,))
    assert modes(path) == {"db": 0o660, "-wal": 0o660, "-shm": 0o660}


def test_an_existing_files_mode_is_left_alone_or_refused_when_wider(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    new_queue(path).enqueue("t")
    os.chmod(path, 0o640)
    for kw in ({"file_mode": 0o640}, {"file_mode": 0o666}):
        new_queue(path, **kw).enqueue("t")
        assert os.stat(path).st_mode & 0o777 == 0o640
    for kw in ({}, {"file_mode": 0o600}):
        with pytest.raises(DatabaseError, match="wider than file_mode"):
            new_queue(path, **kw)
        assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.parametrize("mode", [0o400, 0o200, 0o1777, -1, True, "0600", 1.5])
def test_a_bad_file_mode_is_refused_before_touching_the_disk(tmp_path: Path, mode: Any) -> None:
    path = tmp_path / "sub" / "q.db"
    with pytest.raises(ValueError, match="file_mode"):
        Queue(db_path=str(path), file_mode=mode)
    assert not path.parent.exists()


# -- signed payloads ----------------------------------------------------------------------------


def register(q: Queue, marker: Path) -> Any:
    @q.task(name="record")
    def record(text: str) -> str:
        with open(marker, "a") as f:
            f.write(text + "\n")
        return text.upper()

    return record


def test_a_payload_altered_in_the_database_fails_unread(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    marker = tmp_path / "ran.txt"
    q = new_queue(path, secret_key=KEY)
    record = register(q, marker)
    bad = record.delay("altered")
    good = record.delay("fine")
    # Someone with write access edits the argument bytes; the signature stays as it was.
    payload = get_blob(path, bad.id)
    set_blob(path, bad.id, flip(payload, -3))
    q.run_worker(run_once=True)
    assert good.result(timeout=10) == "FINE"
    assert bad.status == "failed"  # failed for good: running it again cannot help
    assert len(bad.errors) == 1
    assert "CryptoError" in bad.error and "signature did not verify" in bad.error
    assert marker.read_text() == "fine\n"  # the task body never ran on the altered job
    with pytest.raises(TaskFailedError, match="signature did not verify"):
        bad.result(timeout=1)


class _Plant:
    """Unpickling this creates a folder: stands for any code an attacker would run."""

    def __init__(self, where: Path) -> None:
        self.where = str(where)

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.where,))


@pytest.mark.parametrize("signed_by", [None, OTHER_KEY])
def test_a_forged_payload_is_never_unpickled(tmp_path: Path, signed_by: bytes | None) -> None:
    path = str(tmp_path / "q.db")
    q = new_queue(path, secret_key=KEY)
    record = register(q, tmp_path / "ran.txt")
    job = record.delay("harmless")
    planted = tmp_path / "planted"
    forged = pickle.dumps(((_Plant(planted),), {}), protocol=5)
    if signed_by is not None:
        forged = signed(signed_by, args_context("record"), forged)
    set_blob(path, job.id, forged)
    q.run_worker(run_once=True)
    assert job.status == "failed" and "signature did not verify" in job.error
    assert not planted.exists()
    assert not (tmp_path / "ran.txt").exists()


def test_without_a_key_the_same_forgery_runs_code(tmp_path: Path) -> None:
    """The control for the test above: this is what the key protects against."""
    path = str(tmp_path / "q.db")
    q = new_queue(path)
    record = register(q, tmp_path / "ran.txt")
    job = record.delay("harmless")
    planted = tmp_path / "planted"
    set_blob(path, job.id, pickle.dumps(((_Plant(planted),), {}), protocol=5))
    q.run_worker(run_once=True)
    assert planted.exists()


@pytest.mark.parametrize("producer_key", [OTHER_KEY, None])
def test_a_producer_with_another_key_or_none_is_refused(tmp_path: Path, producer_key: bytes | None) -> None:
    path = str(tmp_path / "q.db")
    marker = tmp_path / "ran.txt"
    producer = new_queue(path, secret_key=producer_key)
    job = register(producer, marker).delay("from outside")
    worker = new_queue(path, secret_key=KEY)
    register(worker, marker)
    worker.run_worker(run_once=True)
    assert job.status == "failed" and "signature did not verify" in job.error
    assert len(job.errors) == 1 and not marker.exists()


def test_results_are_signed_and_an_altered_result_raises_crypto_error(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    q = new_queue(path, secret_key=KEY)
    job = register(q, tmp_path / "ran.txt").delay("abc")
    q.run_worker(run_once=True)
    stored = get_blob(path, job.id, "result")
    body = stored[33:]
    assert stored == signed(KEY, result_context(job.id), body)
    assert pickle.loads(body) == "ABC"
    assert job.result(timeout=5) == "ABC"
    set_blob(path, job.id, flip(stored, -2), column="result")
    with pytest.raises(CryptoError, match="signature did not verify") as info:
        job.result(timeout=5)
    assert isinstance(info.value, SerializationError)
    # A reader with the wrong key is refused the same way.
    with pytest.raises(CryptoError):
        new_queue(path, secret_key=OTHER_KEY).get_job(job.id).result(timeout=5)


def test_secret_key_is_an_hmac_codec_at_the_end_of_the_chain(tmp_path: Path) -> None:
    """One signing mechanism: a producer that spells it as a codec and a worker that uses
    secret_key read each other's bytes."""
    path = str(tmp_path / "q.db")
    marker = tmp_path / "ran.txt"
    producer = new_queue(path, codec=HmacCodec(KEY))
    job = register(producer, marker).delay("either way")
    worker = new_queue(path, secret_key=KEY)
    register(worker, marker)
    worker.run_worker(run_once=True)
    assert job.result(timeout=5) == "EITHER WAY"
    assert isinstance(worker._payloads.chain[-1], HmacCodec)


def test_secret_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "q.db")
    monkeypatch.setenv("TASKITO_SECRET_KEY", "an environment secret of 32+ chars")
    q = new_queue(path)
    job = q.enqueue("t", args=(1,))
    stored = get_blob(path, job.id)
    key = b"an environment secret of 32+ chars"
    assert stored == signed(key, args_context("t"), stored[33:])
    # An explicit key wins over the variable.
    explicit = new_queue(path, secret_key=KEY).enqueue("t", args=(1,))
    stored = get_blob(path, explicit.id)
    assert stored == signed(KEY, args_context("t"), stored[33:])


def test_a_short_key_in_the_environment_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKITO_SECRET_KEY", "hunter2")
    with pytest.raises(ValueError, match="TASKITO_SECRET_KEY") as info:
        Queue(db_path=str(tmp_path / "q.db"))
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("key", ["short", b"", b"fifteen bytes!!", 12345, ["k"] * 32])
def test_a_bad_secret_key_is_refused(tmp_path: Path, key: Any) -> None:
    path = tmp_path / "sub" / "q.db"
    with pytest.raises(ValueError, match="secret_key"):
        Queue(db_path=str(path), secret_key=key)
    assert not path.parent.exists()


def test_worker_processes_check_signatures_across_processes(tmp_path: Path) -> None:
    """A producer here, workers in other processes keyed by TASKITO_SECRET_KEY: the one with
    the producer's key runs the jobs, the one with another key refuses them unread."""
    path = str(tmp_path / "q.db")
    marker = tmp_path / "touched.txt"
    app = write_app(tmp_path, path)
    producer = new_queue(path, secret_key="the shared secret of this deployment")
    jobs = [producer.enqueue("touch", args=(str(marker), f"line{i}")) for i in range(3)]
    wrong = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, env={"TASKITO_SECRET_KEY": "x" * 32})
    assert wrong.returncode == 0, wrong.stderr
    assert [j.status for j in jobs] == ["failed"] * 3
    assert all("signature did not verify" in j.error for j in jobs)
    assert not marker.exists()
    again = [producer.enqueue("touch", args=(str(marker), f"line{i}")) for i in range(3)]
    right = run_cli(
        "worker",
        "--app",
        app,
        "--run-once",
        cwd=tmp_path,
        env={"TASKITO_SECRET_KEY": "the shared secret of this deployment"},
    )
    assert right.returncode == 0, right.stderr
    assert [j.result(timeout=10) for j in again] == ["line0", "line1", "line2"]
    assert sorted(marker.read_text().split()) == ["line0", "line1", "line2"]


def test_the_dashboard_decodes_with_the_queues_key_and_refuses_altered_bytes(tmp_path: Path) -> None:
    pytest.importorskip("jinja2")
    from taskito.dashboard.views import job_detail

    path = str(tmp_path / "q.db")
    q = new_queue(path, secret_key=KEY)
    record = register(q, tmp_path / "ran.txt")
    good, bad = record.delay("shown"), record.delay("altered")
    q.run_worker(run_once=True)
    shown = job_detail(q, good.id)
    assert shown is not None and "shown" in shown["args"] and "SHOWN" in shown["result"]
    set_blob(path, bad.id, flip(get_blob(path, bad.id), -1))
    refused = job_detail(q, bad.id)
    assert refused is not None and "CryptoError" in refused["args"]
