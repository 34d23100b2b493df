"""Enqueue with links: dependencies, notes and expiry (and the canvas built on them), plus
replay and cooperative cancel of a running job. Jobs that use none of
these take ``Queue.enqueue``'s plain path and never come here."""

from __future__ import annotations

from typing import Any

from taskito import _settings as settings
from taskito import _transactional
from taskito.facets.base import QueueState, check_result_ttl, metadata_text
from taskito.flow_control import is_idempotent
from taskito.notes import encode_notes
from taskito.result import JobResult

# A job as the engine's ``enqueue_linked`` takes it: ``(job, links)`` where job is
# ``(task_name, payload, queue, priority, delay, max_retries, retry_backoff, timeout,
# unique_key, metadata)`` and links ``(notes_json, expires, depends_on_ids,
# depends_on_batch_indexes, pass_result, result_ttl)``.
JobSpec = tuple[tuple, tuple]

# How a step receives the results of the jobs it depends on (rust/job.rs PassResult).
PASS_NONE, PASS_FIRST, PASS_ALL = 0, 1, 2


def dependency_ids(depends_on: Any) -> list[str]:
    """``depends_on`` as a list of ids: an id, a ``JobResult``, or a list of either."""
    if depends_on is None:
        return []
    items = depends_on if isinstance(depends_on, (list, tuple, set)) else [depends_on]
    out = []
    for item in items:
        job_id = item.id if isinstance(item, JobResult) else item
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"depends_on must be job ids or JobResults, got {item!r}")
        out.append(job_id)
    return out


def check_expires(expires: Any) -> float | None:
    if expires is None:
        return None
    return settings.check_seconds("expires", expires, positive=True)


class Links(QueueState):
    """Linked enqueue, replay and cancel of running jobs for ``Queue``."""

    def _job_spec(
        self,
        task_name: str,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        priority: int | None = None,
        delay: float | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        metadata: Any = None,
        idempotent: bool | None = None,
        notes: Any = None,
        expires: float | None = None,
        depends_on: Any = None,
        result_ttl: float | None = None,
        after: list[int] = (),  # type: ignore[assignment]
        pass_result: int = PASS_NONE,
    ) -> JobSpec:
        """One job of a linked batch; ``after`` are indexes of earlier jobs of the batch. An
        idempotent call (``idempotent``, else the task's option) without a ``unique_key``
        gets one derived from the task and its arguments, as on the plain path."""
        gated = self._tasks.get(task_name)
        if gated is not None and gated._gate is not None:
            delay = gated._gate.at_enqueue(self, gated, args, kwargs, priority, delay, queue)
        opts = self._options(task_name, priority, delay, queue, max_retries, timeout)
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
            raise ValueError(f"unique_key must be a non-empty string, got {unique_key!r}")
        if expires is None:
            task = self._tasks.get(task_name)
            expires = getattr(task, "expires", None)
        plan = self._plan_for(task_name)
        payload = plan.dump_call(task_name, args, kwargs or {})
        if unique_key is None and is_idempotent(self._tasks.get(task_name), idempotent):
            unique_key = plan.idempotency_key(task_name, payload)
        job = (
            task_name,
            payload,
            opts["queue"],
            opts["priority"],
            opts["delay"],
            opts["max_retries"],
            opts["retry_backoff"],
            opts["timeout"],
            unique_key,
            self._payloads.metadata(metadata_text(metadata)),
        )
        links = (
            encode_notes(notes),
            check_expires(expires),
            dependency_ids(depends_on),
            list(after),
            pass_result,
            check_result_ttl(result_ttl),
        )
        return (job, links)

    def _enqueue_specs(self, specs: list[JobSpec]) -> list[JobResult]:
        """Stores a linked batch in one transaction; a queue bounded by ``max_pending`` that
        it would overfill refuses the whole batch with ``QueueFullError``."""
        _transactional.refuse_linked(self)
        ids = self._inner.enqueue_linked(specs, self._max_pending or None)
        results = [self._job(i) for i in ids]
        if self._dispatcher is not None:
            for spec, job in zip(specs, results):
                self._emit_enqueued(job.id, spec[0][0], spec[0][2])
        return results

    def replay(self, job_id: str) -> JobResult:
        """Enqueues the job again as a new job: same task, arguments, options, metadata and
        notes. Raises ``JobNotFoundError`` for an unknown id."""
        new_id = self._inner.replay(job_id)
        if self._dispatcher is not None:
            row = self._inner.get_job(new_id)
            if row is not None:
                self._emit_enqueued(new_id, row["task_name"], row["queue"])
        return self._job(new_id)

    def cancel_running_job(self, job_id: str) -> bool:
        """Asks a running job to stop: True if it was running and is now flagged. The task
        sees it at its next ``current_job.check_cancelled()``, which raises
        ``TaskCancelledError``; the job then ends ``cancelled`` (no retry, no dead letter)."""
        return self._inner.cancel_running_job(job_id)
