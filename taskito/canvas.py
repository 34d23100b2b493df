"""Canvas: ``Signature`` (``task.s()``, ``task.si()``), ``chain``, ``group``, ``chord``,
``starmap`` and ``chunks``.

``.apply()`` stores every job of the workflow in one transaction, linked by dependencies,
and returns at once; the workers carry it on even if the producer exits. A step that takes
its predecessor's result gets it from the store when it runs (a chain link receives the
previous result as its first argument, a chord callback the list of the group's results in
order); an immutable signature (``si``) receives nothing. A step whose predecessor fails is
cancelled, and so is everything after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from taskito.facets.links import PASS_ALL, PASS_FIRST, PASS_NONE, JobSpec

if TYPE_CHECKING:
    from taskito.app import Queue
    from taskito.result import JobResult
    from taskito.task import TaskWrapper

__all__ = ["Signature", "chain", "group", "chord", "starmap", "chunks", "CHUNK_TASK"]

R = TypeVar("R")

CHUNK_TASK = "taskito.chunks"
"""The built-in task that runs one chunk of ``chunks()`` (every worker knows it)."""


class Signature(Generic[R]):
    """A task call not yet enqueued: task, arguments and ``apply_async`` options
    (``Signature[R]`` to type checkers: ``R`` is the task's result type)."""

    def __init__(
        self,
        task: TaskWrapper[..., R],
        args: tuple = (),
        kwargs: dict | None = None,
        options: dict[str, Any] | None = None,
        immutable: bool = False,
    ) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        self.immutable = immutable

    def set(self, **options: Any) -> Signature[R]:
        """Adds ``apply_async`` options (priority, delay, queue, ...); returns self."""
        self.options.update(options)
        return self

    def apply(self) -> JobResult[R]:
        """Enqueues this call alone."""
        queue = self.task._queue
        if queue._test_results is not None:
            return queue._run_inline(self.task.name, self.args, self.kwargs, self.options)
        return self.task.apply_async(self.args, self.kwargs, **self.options)

    delay = apply

    def __repr__(self) -> str:
        mark = "si" if self.immutable else "s"
        return f"<Signature {self.task.name}.{mark}{self.args!r}>"


def _queue_of(sigs: Iterable[Signature]) -> Queue:
    queues = {id(s.task._queue): s.task._queue for s in sigs}
    if len(queues) != 1:
        raise ValueError("a workflow needs at least one signature, all of tasks of one Queue")
    return next(iter(queues.values()))


def _check(sigs: tuple, what: str) -> tuple[Signature, ...]:
    for s in sigs:
        if not isinstance(s, (Signature, group)):
            raise ValueError(f"{what} takes signatures (task.s(...)), got {s!r}")
    return sigs


class _Batch:
    """Jobs of one workflow, built in order; ``add`` returns a job's index in the batch."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.specs: list[JobSpec] = []

    def add(self, sig: Signature, after: list[int], mode: int) -> int:
        opts = dict(sig.options)
        self.specs.append(
            self.queue._job_spec(
                sig.task.name,
                sig.args,
                sig.kwargs,
                after=after,
                pass_result=PASS_NONE if sig.immutable or not after else mode,
                **opts,
            )
        )
        return len(self.specs) - 1

    def add_node(self, node: Signature | group, after: list[int], mode: int) -> tuple[list[int], int]:
        """Adds a signature or a group; returns its jobs and how a following step takes
        their results."""
        if isinstance(node, group):
            return [self.add(s, after, mode) for s in node.sigs], PASS_ALL
        return [self.add(node, after, mode)], PASS_FIRST

    def commit(self) -> list[JobResult]:
        return self.queue._enqueue_specs(self.specs)


class chain:  # noqa: N801 - the public name
    """Runs signatures one after another, each receiving the previous result as its first
    argument (unless immutable). A group inside a chain runs its members in parallel and
    hands the list of their results on."""

    def __init__(self, *sigs: Signature | group) -> None:
        if not sigs:
            raise ValueError("chain needs at least one signature")
        self.sigs = _check(sigs, "chain")

    def apply(self) -> Any:
        """Stores the whole chain; returns the last job's ``JobResult``."""
        queue = _queue_of(_flat(self.sigs))
        if queue._test_results is not None:
            return _inline_chain(queue, self.sigs)
        batch = _Batch(queue)
        tails: list[int] = []
        mode = PASS_FIRST
        for node in self.sigs:
            tails, mode = batch.add_node(node, tails, mode)
        jobs = batch.commit()
        last = jobs[tails[-1]]
        return jobs[-len(tails) :] if isinstance(self.sigs[-1], group) else last


class group:  # noqa: N801 - the public name
    """Runs signatures in parallel."""

    def __init__(self, *sigs: Signature) -> None:
        if len(sigs) == 1 and not isinstance(sigs[0], Signature):
            sigs = tuple(sigs[0])
        for s in sigs:
            if not isinstance(s, Signature):
                raise ValueError(f"group takes signatures (task.s(...)), got {s!r}")
        self.sigs: tuple[Signature, ...] = tuple(sigs)

    def apply(self) -> list[Any]:
        """Stores every job in one transaction; returns their ``JobResult``s in order."""
        if not self.sigs:
            return []
        queue = _queue_of(self.sigs)
        if queue._test_results is not None:
            return [s.apply() for s in self.sigs]
        batch = _Batch(queue)
        for s in self.sigs:
            batch.add(s, [], PASS_NONE)
        return batch.commit()


class chord:  # noqa: N801 - the public name
    """Runs a group, then a callback that receives the list of the group's results."""

    def __init__(self, header: group | Iterable[Signature], callback: Signature) -> None:
        self.header = header if isinstance(header, group) else group(*header)
        if not self.header.sigs:
            raise ValueError("chord needs at least one signature in its group")
        if not isinstance(callback, Signature):
            raise ValueError(f"chord callback must be a signature, got {callback!r}")
        self.callback = callback

    def apply(self) -> Any:
        """Stores the group and the callback; returns the callback's ``JobResult``."""
        return chain(self.header, self.callback).apply()


def starmap(task: TaskWrapper, args_list: Iterable[Iterable[Any]]) -> group:
    """One job per argument tuple: ``task(*args)`` for each, in parallel."""
    return group(*[task.s(*args) for args in args_list])


def chunks(task: TaskWrapper, items: Iterable[Iterable[Any]], n: int) -> group:
    """Splits ``items`` (argument tuples) into chunks of ``n``; each chunk is one job that
    runs ``task(*item)`` for every item of its chunk and returns the list of results."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"chunks: n must be an integer >= 1, got {n!r}")
    items = [tuple(i) for i in items]
    if not items:
        raise ValueError("chunks: no items to split")
    return group(
        *[
            Signature(_ChunkTask(task), (task.name, items[i : i + n]), options=_chunk_options(task))
            for i in range(0, len(items), n)
        ]
    )


class _ChunkTask:
    """Stands in for the task in a chunk's signature: enqueues the built-in chunk runner."""

    def __init__(self, task: TaskWrapper) -> None:
        self._queue = task._queue
        self.name = CHUNK_TASK
        self.target = task

    def apply_async(self, args: tuple, kwargs: dict, **options: Any) -> JobResult:
        return self._queue.enqueue(CHUNK_TASK, args, kwargs, **options)


def _chunk_options(task: TaskWrapper) -> dict[str, Any]:
    # The chunk job runs with the task's own queue, priority, retries and timeout.
    return {
        "queue": task.queue_name,
        "priority": task.priority,
        "max_retries": task.max_retries,
        "timeout": task.timeout,
    }


class _ChunkRunner:
    """The built-in chunk task as dispatch sees it (``.fn``)."""

    queue_name = "default"
    _gate = None
    soft_timeout = None
    _retry_rules = None
    _breaker = None

    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        # Encoded like any job of a task this queue does not register: the queue's plan.
        self._plan = queue._payloads.queue_plan

    def _middleware_chain(self) -> tuple[Any, ...]:
        return tuple(getattr(self._queue, "_middleware", ()))

    def fn(self, task_name: str, items: list[tuple]) -> list[Any]:
        task = self._queue._tasks.get(task_name)
        if task is None:
            raise LookupError(f"task {task_name!r} is not registered in this worker")
        return [task.fn(*item) for item in items]


def builtin_task(queue: Queue, task_name: str) -> Any:
    """A task every worker knows without registering it, or None."""
    return _ChunkRunner(queue) if task_name == CHUNK_TASK else None


def _flat(nodes: Iterable[Signature | group]) -> list[Signature]:
    out: list[Signature] = []
    for node in nodes:
        out.extend(node.sigs if isinstance(node, group) else [node])
    return out


def _inline_chain(queue: Queue, nodes: tuple) -> Any:
    """A chain in test mode: each step runs at once with its predecessor's result."""
    previous: Any = None
    have_previous = False
    last: Any = None
    for node in nodes:
        members = node.sigs if isinstance(node, group) else (node,)
        outs = []
        for sig in members:
            args = sig.args
            if have_previous and not sig.immutable:
                args = (previous, *args)
            outs.append(queue._run_inline(sig.task.name, args, sig.kwargs, sig.options))
        if any(o.failed for o in outs):
            return outs[-1] if not isinstance(node, group) else outs
        previous = [o.return_value for o in outs] if isinstance(node, group) else outs[0].return_value
        have_previous = True
        last = outs if isinstance(node, group) else outs[0]
    return last
