"""Serializers: each one's round trips and formats, the default's fidelity (tuples, big ints,
datetimes, lambdas, local and ``__main__`` objects), per-queue and per-task serializers through
a worker, and signed and encrypted serializers."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import cloudpickle
import msgpack
import pytest
from cli_support import cli_env, run_cli, write_app
from dbtools import flip, get_blob, set_blob

import taskito
from taskito import (
    CborSerializer,
    CloudpickleSerializer,
    CryptoError,
    EncryptedSerializer,
    JsonSerializer,
    MsgPackSerializer,
    Queue,
    SerializationError,
    Serializer,
    SignedSerializer,
    SmartSerializer,
    TaskFailedError,
)

KEY32 = bytes(range(32))
UTC = dt.timezone.utc


def new_queue(path: str, **kw: Any) -> Queue:
    return Queue(db_path=path, workers=2, scheduler_poll_interval_ms=10, **kw)


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (other.x, other.y) == (self.x, self.y)


RICH = {
    "tuple": (1, (2, "three"), ()),
    "bigint": 2**100,
    "negative bigint": -(2**90),
    "aware datetime": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "naive datetime": dt.datetime(2026, 1, 2, 3, 4, 5),
    "date": dt.date(2026, 12, 31),
    "decimal": Decimal("1.10"),
    "set": {1, 2, 3},
    "bytes": b"\x00\xff" * 10,
    "instance": Point(1, 2),
    "nested": {"k": [(1, 2), {"z": (3,)}]},
}


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# -- each serializer on its own -------------------------------------------------------------------


@pytest.mark.parametrize("ser", [SmartSerializer(), CloudpickleSerializer()], ids=repr)
@pytest.mark.parametrize("name", list(RICH))
def test_pickling_serializers_keep_every_type(ser: Serializer, name: str) -> None:
    value = RICH[name]
    assert same(ser.loads(ser.dumps(value)), value)


@pytest.mark.parametrize("ser", [SmartSerializer(), CloudpickleSerializer()], ids=repr)
def test_lambdas_and_local_objects_round_trip(ser: Serializer) -> None:
    offset = 10

    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    def local_fn(x: int) -> int:
        return x + offset

    f = ser.loads(ser.dumps(lambda x: x * offset))
    assert f(4) == 40
    assert ser.loads(ser.dumps(local_fn))(1) == 11
    assert ser.loads(ser.dumps(Local(7))).v == 7


def test_large_payloads_stay_plain_pickle_unless_they_refer_to_main() -> None:
    import os
    from types import FunctionType

    smart = SmartSerializer()
    blob = ((os.urandom(200_000), RICH["aware datetime"], Point(1, 2)), {})
    assert smart.dumps(blob) == pickle.dumps(blob, protocol=5)
    # A function that claims to live in __main__ is carried by value past the scan limit too.
    fake_main = FunctionType((lambda x: x + 1).__code__, {}, "fake")
    fake_main.__module__ = "__main__"
    data = smart.dumps(([os.urandom(200_000)], fake_main))
    assert b"cloudpickle" in data  # carried by value: cloudpickle's helpers rebuild it
    assert smart.loads(data)[1](1) == 2


def test_the_default_writes_plain_data_as_pickle_protocol_5() -> None:
    """The fast path: plain data costs what pickle costs, and databases written before
    serializers were configurable read as they are."""
    smart = SmartSerializer()
    for value in [((1, "a"), {}), None, {"k": [1.5, True]}, 2**80, RICH["aware datetime"]]:
        assert smart.dumps(value) == pickle.dumps(value, protocol=5)
        assert same(smart.loads(pickle.dumps(value, protocol=5)), value)


def test_the_default_reads_msgpack_cbor_and_tagged_cloudpickle() -> None:
    smart = SmartSerializer()
    assert smart.loads(b"\x00" + msgpack.packb([[1, 2], {"a": b"x"}], use_bin_type=True)) == [
        [1, 2],
        {"a": b"x"},
    ]
    assert smart.loads(CborSerializer().dumps({"n": 2**70})) == {"n": 2**70}
    assert smart.loads(b"\x01" + cloudpickle.dumps(lambda: 5))() == 5


@pytest.mark.parametrize("data", [b"", b"\x07junk", b"\x80garbage"])
def test_the_default_refuses_what_it_cannot_read(data: bytes) -> None:
    with pytest.raises(Exception) as info:
        SmartSerializer().loads(data)
    if data[:1] != b"\x80":
        assert isinstance(info.value, SerializationError)


def test_json_and_msgpack_carry_plain_types() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": -3}}
    for ser in (JsonSerializer(), MsgPackSerializer()):
        assert ser.loads(ser.dumps(value)) == value
        assert ser.loads(ser.dumps((1, 2))) == [1, 2]  # tuples come back as lists
        with pytest.raises(SerializationError):
            ser.dumps(Point(1, 2))
    assert json.loads(JsonSerializer().dumps(value)) == value
    assert msgpack.unpackb(MsgPackSerializer().dumps(value)) == value
    assert MsgPackSerializer().loads(MsgPackSerializer().dumps(b"raw")) == b"raw"
    with pytest.raises(SerializationError):
        JsonSerializer().dumps(float("nan"))


def test_cbor_keeps_big_ints_aware_datetimes_bytes_and_decimals() -> None:
    cbor = CborSerializer()
    value = {"big": 2**100, "when": RICH["aware datetime"], "raw": b"\x00\x01", "d": Decimal("1.10")}
    data = cbor.dumps(value)
    assert data[0] == 0x02
    assert cbor2.loads(data[1:]) == value
    back = cbor.loads(data)
    assert back == value and type(back["d"]) is Decimal
    with pytest.raises(SerializationError, match="0x02"):
        cbor.loads(cbor2.dumps(value))


def test_every_serializer_is_a_serializer() -> None:
    for ser in (
        SmartSerializer(),
        CloudpickleSerializer(),
        JsonSerializer(),
        MsgPackSerializer(),
        CborSerializer(),
        SignedSerializer(JsonSerializer(), KEY32),
        EncryptedSerializer(JsonSerializer(), KEY32),
    ):
        assert isinstance(ser, Serializer)
    assert taskito.serializers.SmartSerializer is SmartSerializer


# -- signed and encrypted ---------------------------------------------------------------------------


def test_signed_serializer_signs_and_refuses_altered_bytes() -> None:
    signed = SignedSerializer(JsonSerializer(), KEY32)
    data = signed.dumps({"a": 1})
    assert data[:1] == b"\xa2" and data[33:] == JsonSerializer().dumps({"a": 1})
    assert signed.loads(data) == {"a": 1}
    for bad in (flip(data, 0), flip(data, -1), data[:20]):
        with pytest.raises(CryptoError) as info:
            signed.loads(bad)
        assert isinstance(info.value, SerializationError)
    with pytest.raises(CryptoError):
        SignedSerializer(JsonSerializer(), bytes(reversed(KEY32))).loads(data)


@pytest.mark.parametrize("key", [b"", b"x" * 31, "x" * 40, None, 32])
def test_signed_serializer_refuses_a_bad_key(key: Any) -> None:
    with pytest.raises(ValueError, match="key"):
        SignedSerializer(SmartSerializer(), key)


def test_encrypted_serializer_round_trips_and_hides_the_data() -> None:
    for size in (16, 24, 32):
        enc = EncryptedSerializer(SmartSerializer(), bytes(size))
        a, b = enc.dumps("secret words"), enc.dumps("secret words")
        assert a != b and b"secret words" not in a  # a fresh nonce each time
        assert enc.loads(a) == "secret words"
        with pytest.raises(CryptoError):
            enc.loads(flip(a, -1))
        with pytest.raises(CryptoError):
            EncryptedSerializer(SmartSerializer(), b"\x01" * size).loads(a)


@pytest.mark.parametrize("key", [b"", b"x" * 15, b"x" * 20, b"x" * 33, "x" * 16, None])
def test_encrypted_serializer_refuses_a_bad_key(key: Any) -> None:
    with pytest.raises(ValueError, match="key"):
        EncryptedSerializer(SmartSerializer(), key)


# -- through a queue and a worker -----------------------------------------------------------------


def test_the_default_carries_rich_arguments_and_results_through_a_worker(tmp_path: Path) -> None:
    q = new_queue(str(tmp_path / "q.db"))

    @q.task()
    def echo(value: Any) -> Any:
        return value

    @q.task()
    def apply(fn: Any, x: Any) -> Any:
        return fn(x)

    @q.task()
    def make_adder(n: int) -> Any:
        return lambda x: x + n

    jobs = {name: echo.delay(v) for name, v in RICH.items()}
    lam = apply.delay(lambda x: (x, x * 2), 21)
    adder = make_adder.delay(5)
    q.run_worker(run_once=True)
    for name, job in jobs.items():
        assert same(job.result(timeout=10), RICH[name]), name
    assert same(lam.result(timeout=10), (21, 42))
    assert adder.result(timeout=10)(1) == 6


def test_a_queue_serializer_encodes_arguments_and_results(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    q = new_queue(path, serializer=MsgPackSerializer())

    @q.task()
    def pair(a: int, b: str) -> dict:
        return {"a": a, "b": b}

    job = pair.delay(1, b="x")
    assert msgpack.unpackb(get_blob(path, job.id)) == [[1], {"b": "x"}]
    q.run_worker(run_once=True)
    assert job.result(timeout=10) == {"a": 1, "b": "x"}
    assert msgpack.unpackb(get_blob(path, job.id, "result")) == {"a": 1, "b": "x"}


def test_a_task_serializer_wins_over_the_queues(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    q = new_queue(path)

    @q.task(serializer=JsonSerializer())
    def as_json(items: list) -> list:
        return [i * 2 for i in items]

    @q.task()
    def as_default(items: tuple) -> tuple:
        return items

    j, d = as_json.delay([1, 2]), as_default.delay((1, 2))
    assert json.loads(get_blob(path, j.id)) == [[[1, 2]], {}]
    assert get_blob(path, d.id)[:1] == b"\x80"
    q.run_worker(run_once=True)
    assert j.result(timeout=10) == [2, 4]
    assert json.loads(get_blob(path, j.id, "result")) == [2, 4]
    assert same(d.result(timeout=10), (1, 2))
    # Reading the result from another Queue object that registers the same task works too.
    other = new_queue(path)

    @other.task(name=as_json.name, serializer=JsonSerializer())
    def as_json_again(items: list) -> list:
        return items

    assert other.get_job(j.id).result(timeout=5) == [2, 4]


def test_cbor_through_a_worker_keeps_big_ints(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    q = new_queue(path, serializer=CborSerializer())

    @q.task()
    def square(n: int) -> int:
        return n * n

    job = square.delay(2**70)
    assert get_blob(path, job.id)[0] == 0x02
    q.run_worker(run_once=True)
    assert job.result(timeout=10) == 2**140


def test_a_user_serializer_is_used_as_given(tmp_path: Path) -> None:
    class Reversed:
        """Any object with dumps and loads will do."""

        def dumps(self, obj: Any) -> bytes:
            return json.dumps(obj).encode()[::-1]

        def loads(self, data: bytes) -> Any:
            return json.loads(data[::-1])

    path = str(tmp_path / "q.db")
    q = new_queue(path, serializer=Reversed())

    @q.task()
    def total(xs: list) -> int:
        return sum(xs)

    job = total.delay([1, 2, 3])
    assert get_blob(path, job.id) == b"[[[1, 2, 3]], {}]"[::-1]
    q.run_worker(run_once=True)
    assert job.result(timeout=10) == 6


def test_a_value_the_serializer_cannot_encode_fails_at_enqueue(tmp_path: Path) -> None:
    q = new_queue(str(tmp_path / "q.db"), serializer=JsonSerializer())

    @q.task()
    def take(x: Any) -> None:
        return None

    with pytest.raises(SerializationError, match=take.name):
        take.delay(Point(1, 2))
    assert sum(q.stats().values()) == 0


@pytest.mark.parametrize("bad", ["json", JsonSerializer, object(), 3])
def test_a_bad_serializer_is_refused(tmp_path: Path, bad: Any) -> None:
    path = tmp_path / "sub" / "q.db"
    with pytest.raises(ValueError, match="serializer"):
        Queue(db_path=str(path), serializer=bad)
    assert not path.parent.exists()
    q = new_queue(str(tmp_path / "ok.db"))
    with pytest.raises(ValueError, match="serializer"):

        @q.task(serializer=bad)
        def t() -> None:
            pass

    assert q.tasks == {}


def test_a_signed_queue_serializer_refuses_an_altered_payload(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    q = new_queue(path, serializer=SignedSerializer(SmartSerializer(), KEY32))
    ran: list[int] = []

    @q.task()
    def work(x: int) -> int:
        ran.append(x)
        return x

    job = work.delay(1)
    set_blob(path, job.id, flip(get_blob(path, job.id), -1))
    q.run_worker(run_once=True)
    assert job.status == "failed" and "signature did not verify" in job.error
    assert ran == []
    with pytest.raises(TaskFailedError):
        job.result(timeout=1)


MAIN_PRODUCER = """
import os
from appmod import queue

def triple(x):          # defined in __main__: a worker process does not have it
    return 3 * x

class Box:
    def __init__(self, v):
        self.v = v

job1 = queue.enqueue("call", args=(triple, 14))
job2 = queue.enqueue("unbox", args=(Box(5),))
# A large payload (random bytes, so pickle's global opcode byte occurs by chance too).
job3 = queue.enqueue("call", args=(triple, 2), kwargs={"pad": os.urandom(300_000)})
job4 = queue.enqueue("unbox", args=([os.urandom(300_000), Box(7)],))
print(job1.id, job2.id, job3.id, job4.id)
"""


def test_functions_and_classes_of_a_main_script_reach_a_worker_process(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    app = write_app(
        tmp_path,
        path,
        body="""
        @queue.task(name="call")
        def call(fn, x, pad=None):
            return fn(x)

        @queue.task(name="unbox")
        def unbox(box):
            box = box[-1] if isinstance(box, list) else box
            return box.v * 2
        """,
    )
    script = tmp_path / "producer.py"
    script.write_text(textwrap.dedent(MAIN_PRODUCER))
    made = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    id1, id2, id3, id4 = made.stdout.split()
    ran = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    q = new_queue(path)
    assert q.get_job(id1).result(timeout=10) == 42
    assert q.get_job(id2).result(timeout=10) == 10
    assert q.get_job(id3).result(timeout=10) == 6
    assert q.get_job(id4).result(timeout=10) == 14


@pytest.mark.parametrize(
    "module, extra, make",
    [
        ("cbor2", "cbor", lambda: CborSerializer()),
        ("cryptography", "crypto", lambda: EncryptedSerializer(SmartSerializer(), bytes(16))),
        ("msgpack", "msgpack", lambda: MsgPackSerializer()),
    ],
)
def test_a_missing_optional_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, extra: str, make
) -> None:
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"taskito\[{extra}\]"):
        make()
