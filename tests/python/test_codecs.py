"""Codecs: gzip with its decompression cap, HMAC signing, AES-GCM encryption, chains and their
order, the queue's global chain (arguments and results) and named per-task codecs (arguments
only), and what a worker does with bytes that do not verify or decrypt."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from dbtools import args_context, flip, get_blob, raw_bytes, result_context, set_blob, signed

from taskito import (
    AesGcmCodec,
    CodecSerializer,
    CryptoError,
    GzipCodec,
    HmacCodec,
    JsonSerializer,
    PayloadCodec,
    Queue,
    SerializationError,
    SmartSerializer,
    TaskFailedError,
)

KEY = bytes(range(32))
MARKER = "TOP-SECRET-7c1e0b5f"


def new_queue(path: str, **kw: Any) -> Queue:
    return Queue(db_path=path, workers=2, scheduler_poll_interval_ms=10, **kw)


def register(q: Queue, ran: list, **task_kw: Any) -> Any:
    @q.task(name="shout", **task_kw)
    def shout(text: str) -> str:
        ran.append(text)
        return text.upper() + "!"

    return shout


# -- gzip -------------------------------------------------------------------------------------------


def test_gzip_round_trips_as_standard_gzip() -> None:
    codec = GzipCodec()
    data = b"hello " * 1000
    packed = codec.encode(data)
    assert packed[:2] == b"\x1f\x8b" and len(packed) < 100
    assert gzip.decompress(packed) == data
    assert codec.decode(gzip.compress(data)) == data
    assert codec.decode(packed) == data


def test_gzip_output_past_the_cap_fails() -> None:
    small = GzipCodec(max_decompressed_bytes=1000)
    assert small.decode(GzipCodec().encode(b"x" * 1000)) == b"x" * 1000
    with pytest.raises(SerializationError, match="max_decompressed_bytes"):
        small.decode(GzipCodec().encode(b"x" * 1001))
    # The default cap is 64 MiB: a small payload that inflates past it is refused.
    bomb = gzip.compress(bytes(65 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000
    with pytest.raises(SerializationError, match="max_decompressed_bytes=67108864"):
        GzipCodec().decode(bomb)


@pytest.mark.parametrize("data", [b"not gzip at all", gzip.compress(b"x" * 5000)[:-12]])
def test_gzip_refuses_garbage_and_truncated_data(data: bytes) -> None:
    with pytest.raises(SerializationError):
        GzipCodec().decode(data)


@pytest.mark.parametrize("cap", [0, -1, True, 1.5, "64"])
def test_gzip_refuses_a_bad_cap(cap: Any) -> None:
    with pytest.raises(ValueError, match="max_decompressed_bytes"):
        GzipCodec(max_decompressed_bytes=cap)


def test_the_gzip_cap_holds_on_a_worker(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    producer = new_queue(path, codec=GzipCodec())
    job = register(producer, ran).delay("y" * 5000)
    worker = new_queue(path, codec=GzipCodec(max_decompressed_bytes=1000))
    register(worker, ran)
    worker.run_worker(run_once=True)
    assert job.status == "failed" and "max_decompressed_bytes" in job.error
    assert ran == [] and len(job.errors) == 1


# -- HMAC and AES-GCM -------------------------------------------------------------------------------


def test_hmac_codec_layout_and_verification() -> None:
    codec = HmacCodec(KEY)
    packed = codec.encode(b"body")
    assert packed == signed(KEY, b"", b"body")
    assert codec.decode(packed) == b"body"
    for bad in (flip(packed, 0), flip(packed, 1), flip(packed, -1), packed[:32], b""):
        with pytest.raises(CryptoError, match="signature did not verify"):
            codec.decode(bad)
    with pytest.raises(CryptoError):
        HmacCodec(b"another key").decode(packed)


@pytest.mark.parametrize("key", [b"", "text key", None, 7])
def test_hmac_codec_refuses_a_bad_key(key: Any) -> None:
    with pytest.raises(ValueError, match="key"):
        HmacCodec(key)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_aes_gcm_layout_fresh_nonces_and_key_sizes(size: int) -> None:
    key = bytes(range(size))
    codec = AesGcmCodec(key)
    a, b = codec.encode(b"plain text"), codec.encode(b"plain text")
    assert len(a) == 12 + len(b"plain text") + 16
    assert a[:12] != b[:12] and a != b
    assert AESGCM(key).decrypt(a[:12], a[12:], None) == b"plain text"
    assert codec.decode(a) == codec.decode(b) == b"plain text"
    for bad in (flip(a, 0), flip(a, 20), flip(a, -1), a[:27]):
        with pytest.raises(CryptoError, match="did not decrypt"):
            codec.decode(bad)
    with pytest.raises(CryptoError):
        AesGcmCodec(bytes(size)).decode(a)


@pytest.mark.parametrize("key", [b"", b"x" * 15, b"x" * 17, b"x" * 31, b"x" * 64, "x" * 16, None])
def test_aes_gcm_refuses_a_bad_key(key: Any) -> None:
    with pytest.raises(ValueError, match="key"):
        AesGcmCodec(key)


# -- chains -----------------------------------------------------------------------------------------


class Prefix:
    def __init__(self, tag: bytes) -> None:
        self.tag = tag

    def encode(self, data: bytes) -> bytes:
        return self.tag + data

    def decode(self, data: bytes) -> bytes:
        assert data.startswith(self.tag), (self.tag, data[:4])
        return data[len(self.tag) :]


def test_a_chain_encodes_in_order_and_decodes_in_reverse() -> None:
    ser = CodecSerializer(JsonSerializer(), [Prefix(b"A"), Prefix(b"B")])
    data = ser.dumps([1])
    assert data == b"BA[1]"
    assert ser.loads(data) == [1]
    assert isinstance(Prefix(b"x"), PayloadCodec) and isinstance(GzipCodec(), PayloadCodec)
    single = CodecSerializer(SmartSerializer(), GzipCodec())
    assert single.loads(single.dumps((1, 2))) == (1, 2)


def test_the_global_chain_covers_arguments_and_results(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    q = new_queue(path, codec=[GzipCodec(), AesGcmCodec(KEY)])
    job = register(q, ran).delay("hi")
    q.run_worker(run_once=True)
    assert job.result(timeout=10) == "HI!"

    def unwrap(stored: bytes, context: bytes) -> Any:
        # The tag covers where the bytes belong: the task's arguments, the job's result.
        return pickle.loads(gzip.decompress(AESGCM(KEY).decrypt(stored[:12], stored[12:], context)))

    assert unwrap(get_blob(path, job.id), args_context("shout")) == (("hi",), {})
    assert unwrap(get_blob(path, job.id, "result"), result_context(job.id)) == "HI!"


@pytest.mark.parametrize("encrypted", [True, False])
def test_an_encrypted_payload_cannot_be_read_in_the_database_file(tmp_path: Path, encrypted: bool) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    q = new_queue(path, codec=AesGcmCodec(KEY) if encrypted else None)
    job = register(q, ran).delay(MARKER)
    q.run_worker(run_once=True)
    assert job.result(timeout=10) == MARKER.upper() + "!"
    raw = raw_bytes(path)
    found = MARKER.encode() in raw or MARKER.upper().encode() in raw
    assert found is not encrypted  # the control: without the codec the marker is right there


def test_named_codecs_apply_to_one_tasks_arguments_only(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    q = new_queue(path, codecs={"zip": GzipCodec()})
    zipped = register(q, ran, codecs=["zip"])

    @q.task(name="plain")
    def plain(text: str) -> str:
        return text

    a, b = zipped.delay("x" * 500), plain.delay("y")
    assert get_blob(path, a.id)[:2] == b"\x1f\x8b"
    assert pickle.loads(gzip.decompress(get_blob(path, a.id))) == (("x" * 500,), {})
    assert get_blob(path, b.id)[:1] == b"\x80"
    q.run_worker(run_once=True)
    assert a.result(timeout=10) == "X" * 500 + "!" and b.result(timeout=10) == "y"
    assert get_blob(path, a.id, "result")[:1] == b"\x80"  # results skip named codecs


def test_named_codecs_sit_inside_the_global_chain(tmp_path: Path) -> None:
    """A global signature covers what the named codecs produced: it is checked first."""
    path = str(tmp_path / "q.db")
    ran: list = []
    q = new_queue(path, codecs={"zip": GzipCodec()}, secret_key=KEY)
    job = register(q, ran, codecs="zip").delay("inside")
    stored = get_blob(path, job.id)
    body = stored[33:]
    assert stored == signed(KEY, args_context("shout"), body)
    assert pickle.loads(gzip.decompress(body)) == (("inside",), {})
    q.run_worker(run_once=True)
    assert job.result(timeout=10) == "INSIDE!"


def test_an_unknown_codec_name_is_refused(tmp_path: Path) -> None:
    q = new_queue(str(tmp_path / "q.db"), codecs={"zip": GzipCodec()})
    with pytest.raises(ValueError, match="'lz4'"):

        @q.task(codecs=["zip", "lz4"])
        def t() -> None:
            pass

    assert q.tasks == {}
    bare = new_queue(str(tmp_path / "q2.db"))
    with pytest.raises(ValueError, match="unknown codec name 'zip'"):
        bare.task(codecs=["zip"])


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"codec": "gzip"}, "codec"),
        ({"codec": [GzipCodec(), object()]}, "codec"),
        ({"codec": GzipCodec}, "codec"),
        ({"codecs": [GzipCodec()]}, "codecs"),
        ({"codecs": {"zip": "gzip"}}, "codecs"),
        ({"codecs": {"": GzipCodec()}}, "codecs"),
    ],
)
def test_bad_codec_options_are_refused(tmp_path: Path, kwargs: dict, option: str) -> None:
    path = tmp_path / "sub" / "q.db"
    with pytest.raises(ValueError, match=option):
        Queue(db_path=str(path), **kwargs)
    assert not path.parent.exists()


# -- bytes that do not verify or decrypt, on a worker and in result() -------------------------------


@pytest.mark.parametrize("how", ["altered", "other key"])
def test_a_payload_that_does_not_decrypt_fails_and_the_body_never_runs(tmp_path: Path, how: str) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    producer = new_queue(path, codec=AesGcmCodec(KEY))
    job = register(producer, ran).delay("never")
    ok = register(producer, ran).delay("fine")
    if how == "altered":
        set_blob(path, job.id, flip(get_blob(path, job.id), 15))
        worker = producer
    else:
        worker = new_queue(path, codec=AesGcmCodec(bytes(32)))
        register(worker, ran)
    worker.run_worker(run_once=True)
    assert job.status == "failed" and len(job.errors) == 1
    assert "CryptoError" in job.error and "did not decrypt" in job.error
    assert "never" not in ran
    with pytest.raises(TaskFailedError, match="did not decrypt"):
        job.result(timeout=1)
    if how == "altered":
        assert ok.result(timeout=10) == "FINE!"


def test_a_tampered_signed_payload_fails_and_the_body_never_runs(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    q = new_queue(path, codec=HmacCodec(b"a key"))
    job = register(q, ran).delay("never")
    set_blob(path, job.id, flip(get_blob(path, job.id), -1))
    q.run_worker(run_once=True)
    assert job.status == "failed" and "signature did not verify" in job.error
    assert ran == []


def test_an_altered_encrypted_result_raises_crypto_error(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    q = new_queue(path, codec=AesGcmCodec(KEY))
    job = register(q, ran).delay("r")
    q.run_worker(run_once=True)
    set_blob(path, job.id, flip(get_blob(path, job.id, "result"), 13), column="result")
    with pytest.raises(CryptoError, match="did not decrypt"):
        job.result(timeout=5)


def test_jobs_stored_before_the_chain_changed_fail_clearly(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    ran: list = []
    before = new_queue(path, codec=GzipCodec())
    job = register(before, ran).delay("old")
    after = new_queue(path)
    register(after, ran)
    after.run_worker(run_once=True)
    assert job.status == "failed" and "SerializationError" in job.error
    assert ran == []
