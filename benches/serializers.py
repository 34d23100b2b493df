"""Times candidate formats for the default serializer on the payloads a task queue carries.

    python benches/serializers.py [--number 20000]

For each payload: CPU microseconds per dumps+loads round trip (best of 5, so other load on
the machine matters little), encoded size, and whether the
value comes back equal and of the same types (tuples stay tuples, big ints and datetimes
survive). Small and quick: it runs in a few seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import sys
import time
import timeit
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cloudpickle  # noqa: E402
import msgpack  # noqa: E402

from taskito.serializers import SmartSerializer  # noqa: E402

PAYLOADS = {
    "call (1, 'a')": ((1, "a"), {}),
    "call, 10 kwargs": ((), {f"k{i}": i * 1.5 for i in range(10)}),
    "call, list of 100 dicts": (([{"id": i, "name": f"n{i}", "ok": True} for i in range(100)],), {}),
    "call, 64 KiB bytes": ((os.urandom(65536),), {}),
    "result None": None,
    "result tuple+bigint+datetime": ((1, 2), 2**80, dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)),
    "result Decimal": Decimal("1.10"),
}


def _pickle(o):
    return pickle.dumps(o, 5)


def _msgpack_dumps(o):
    return msgpack.packb(o, use_bin_type=True)


def _msgpack_loads(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False)


smart = SmartSerializer()
FORMATS = {
    "pickle protocol 5 (0.x today)": (_pickle, pickle.loads),
    "cloudpickle": (lambda o: cloudpickle.dumps(o, 5), pickle.loads),
    "msgpack": (_msgpack_dumps, _msgpack_loads),
    "SmartSerializer (chosen)": (smart.dumps, smart.loads),
}


def same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=20000)
    n = ap.parse_args().number
    print(f"{'payload':32} {'format':32} {'us/round trip':>14} {'bytes':>8}  faithful")
    for pname, value in PAYLOADS.items():
        for fname, (dumps, loads) in FORMATS.items():
            try:
                data = dumps(value)
                back = loads(data)
            except Exception as exc:
                print(f"{pname:32} {fname:32} {'-':>14} {'-':>8}  fails: {type(exc).__name__}")
                continue
            k = max(1, n // (1 + len(data) // 4096))
            t = (
                min(
                    timeit.repeat(
                        lambda d=dumps, ld=loads, v=value: ld(d(v)),
                        number=k,
                        repeat=5,
                        timer=time.thread_time,
                    )
                )
                / k
                * 1e6
            )
            print(f"{pname:32} {fname:32} {t:14.2f} {len(data):8d}  {'yes' if same(value, back) else 'NO'}")


if __name__ == "__main__":
    main()
