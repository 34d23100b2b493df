#!/usr/bin/env python3
"""Latency of the three ways one process can wake another that shares a SQLite file on
Linux: a datagram to a Unix socket, an inotify watch on the write-ahead log, and a futex
in a shared mapping beside the database. Each is timed from the sender's call to the
sleeper's return, in microseconds, with a fresh sleeper process; plus how many wake-ups
the sleeper gets for writes that are not new work (the WAL watch fires on every write
of every connection: heartbeats, claims, completions).

python3 benches/wake_mechanisms.py [--rounds N]

Standard library only (ctypes for inotify and futex); the figures include the same
Python overhead for every mechanism, so compare them with each other.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import multiprocessing as mp
import os
import socket
import statistics
import struct
import tempfile
import time

LIBC = ctypes.CDLL(None, use_errno=True)
SYS_FUTEX = 202  # x86_64
FUTEX_WAIT, FUTEX_WAKE = 0, 1
IN_MODIFY = 0x2


def futex(addr: int, op: int, val: int) -> int:
    return LIBC.syscall(SYS_FUTEX, ctypes.c_void_p(addr), op, val, None, None, 0)


def sleeper_socket(path: str, rounds: int, out) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    out.send("ready")
    for _ in range(rounds):
        s.recv(16)
        out.send(time.perf_counter_ns())


def sleeper_inotify(path: str, rounds: int, out) -> None:
    fd = LIBC.inotify_init()
    LIBC.inotify_add_watch(fd, path.encode(), IN_MODIFY)
    out.send("ready")
    for _ in range(rounds):
        os.read(fd, 4096)
        out.send(time.perf_counter_ns())


def sleeper_futex(path: str, rounds: int, out) -> None:
    f = open(path, "r+b")
    m = mmap.mmap(f.fileno(), 4096)
    addr = ctypes.addressof(ctypes.c_int.from_buffer(m))
    word = ctypes.c_int.from_address(addr)
    out.send("ready")
    seen = 0
    for _ in range(rounds):
        while word.value == seen:
            futex(addr, FUTEX_WAIT, seen)
        seen = word.value
        out.send(time.perf_counter_ns())


def measure(kind: str, rounds: int) -> list[float]:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "wake")
    if kind in ("inotify", "futex"):
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
    here, there = mp.Pipe()
    target = {"socket": sleeper_socket, "inotify": sleeper_inotify, "futex": sleeper_futex}[kind]
    proc = mp.Process(target=target, args=(path, rounds, there))
    proc.start()
    assert here.recv() == "ready"
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if kind == "futex":
        f = open(path, "r+b")
        m = mmap.mmap(f.fileno(), 4096)
        addr = ctypes.addressof(ctypes.c_int.from_buffer(m))
        word = ctypes.c_int.from_address(addr)
    if kind == "inotify":
        wal = open(path, "r+b", buffering=0)
    samples = []
    for i in range(rounds):
        time.sleep(0.002)  # the sleeper is asleep again
        start = time.perf_counter_ns()
        if kind == "socket":
            sender.sendto(b"\1", path)
        elif kind == "inotify":
            wal.write(struct.pack("i", i))  # a WAL append by the committing connection
        else:
            word.value = i + 1
            futex(addr, FUTEX_WAKE, 1 << 30)
        woke = here.recv()
        samples.append((woke - start) / 1000.0)
    proc.join()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1000)
    rounds = parser.parse_args().rounds
    print("| mechanism | p50 µs | p99 µs |")
    print("|---|---|---|")
    for kind in ("socket", "inotify", "futex"):
        s = sorted(measure(kind, rounds))
        print(f"| {kind} | {statistics.median(s):.0f} | {s[int(len(s) * 0.99) - 1]:.0f} |")


if __name__ == "__main__":
    main()
