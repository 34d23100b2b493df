# pytest_fixture.py: a queue per test, on its own file; run with pytest (or python, as here).
import sys

import pytest

from taskito import Queue


@pytest.fixture
def queue(tmp_path):
    q = Queue(db_path=str(tmp_path / "tasks.db"))
    yield q
    q.close()


def test_add_runs_on_a_real_worker(queue):
    @queue.task()
    def add(a, b):
        return a + b

    job = add.delay(2, 3)
    assert queue.run_worker(run_once=True) == 1
    assert job.result(timeout=10) == 5


def test_process_one_runs_in_this_thread(queue):
    @queue.task()
    def greet(name):
        return f"hello {name}"

    job = greet.delay("ada")
    assert queue.process_one() is True
    assert job.result(timeout=0) == "hello ada"
    assert queue.process_one() is False


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
