"""Several ``Queue`` objects of one process on one file, beside other processes: nothing a
process commits is lost because another process closed the database meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from taskito import Queue

_OTHER = "from taskito import Queue; import sys; print(Queue(db_path=sys.argv[1]).stats()['pending'])"


def _other_process_count(db_path: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _OTHER, db_path],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.sqlite_only  # SQLite's file and write-ahead log
def test_a_second_queue_on_the_file_keeps_the_first_ones_commits_visible(db_path: str) -> None:
    first = Queue(db_path=db_path)
    first.enqueue("t", args=(0,))
    # A second store on the same file in this process, then another process that opens and
    # closes the database: the first store's later commits must reach the file.
    second = Queue(db_path=db_path)
    assert _other_process_count(db_path) == 1
    assert os.path.exists(db_path + "-wal")
    for i in range(5):
        first.enqueue("t", args=(i,))
    second.enqueue("t", args=(9,))
    assert first.stats()["pending"] == 7
    assert _other_process_count(db_path) == 7
    del second
    first.enqueue("t", args=(10,))
    assert _other_process_count(db_path) == 8
