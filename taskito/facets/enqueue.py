"""Enqueue: ``enqueue`` and ``enqueue_many``, the calls every ``delay()``, ``apply_async``
and ``map`` ends in. A job with no links (dependencies, notes, expiry) takes the plain path
here straight to the engine's ``enqueue``; one with links goes through ``facets.links``."""

from __future__ import annotations

from typing import Any

from taskito import _transactional
from taskito.facets.base import JobOptions, QueueState, job_options, metadata_text, result_ttls, run_options
from taskito.flow_control import check_unique_keys, is_idempotent, unique_keys_for
from taskito.middleware import TaskMiddleware
from taskito.result import JobResult


class Enqueue(QueueState):
    """``enqueue`` and ``enqueue_many`` of ``Queue``."""

    def enqueue(
        self,
        task_name: str,
        args: tuple = (),
        kwargs: dict | None = None,
        priority: int | None = None,
        delay: float | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        metadata: Any = None,
        idempotent: bool | None = None,
        *,
        depends_on: Any = None,
        expires: float | None = None,
        notes: dict[str, Any] | None = None,
        result_ttl: float | None = None,
        connection: Any = None,
    ) -> JobResult:
        """Stores one job for the task named ``task_name`` (registered here or not).
        While a job with the same ``unique_key`` is pending or running, returns that job
        instead; ``idempotent`` derives the key from the task and its arguments (default:
        the task's own ``idempotent`` option). ``depends_on``: job id(s) that must complete
        first; ``expires``: seconds within which it must start; ``notes``: a small dict
        (``taskito.notes``); ``result_ttl``: seconds the job is kept once finished, then
        deleted by a worker's maintenance sweep, whatever the queue's retention says.
        ``connection``: write the job through the application's connection, inside its
        transaction (see ``Queue.using``)."""
        if connection is not None:
            with self.using(connection):  # type: ignore[attr-defined]
                return self.enqueue(
                    task_name, args, kwargs, priority, delay, queue, max_retries, timeout, unique_key,
                    metadata, idempotent, depends_on=depends_on, expires=expires, notes=notes,
                    result_ttl=result_ttl,
                )  # fmt: skip
        if self._test_results is not None:
            gated = self._tasks.get(task_name)
            if gated is not None and gated._gate is not None:
                delay = gated._gate.at_enqueue(self, gated, args, kwargs, priority, delay, queue)
            options = job_options(priority, delay, queue, max_retries, timeout, unique_key, metadata)
            return self._run_inline(task_name, args, kwargs or {}, dict(options))  # type: ignore[return-value]
        chain = self._enqueue_chain(task_name)
        if chain:
            options = job_options(priority, delay, queue, max_retries, timeout, unique_key, metadata)
            options = self._on_enqueue(chain, task_name, args, kwargs or {}, options)
            priority, delay, queue = options["priority"], options["delay"], options["queue"]
            max_retries, timeout = options["max_retries"], options["timeout"]
            unique_key, metadata = options["unique_key"], options["metadata"]
        task = self._tasks.get(task_name)
        if depends_on is not None or notes is not None or expires is not None or (task and task.expires):
            (job,) = self._enqueue_specs(
                [
                    self._job_spec(
                        task_name, args, kwargs, priority=priority, delay=delay, queue=queue,
                        max_retries=max_retries, timeout=timeout, unique_key=unique_key,
                        metadata=metadata, idempotent=idempotent, notes=notes, expires=expires,
                        depends_on=depends_on, result_ttl=result_ttl,
                    )
                ]
            )  # fmt: skip
            return job
        if task is not None and task._gate is not None:
            delay = task._gate.at_enqueue(self, task, args, kwargs, priority, delay, queue)
        opts = self._options(task_name, priority, delay, queue, max_retries, timeout)
        plan = self._plan_for(task_name)
        payload = plan.dump_call(task_name, args, kwargs or {})
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
            raise ValueError(f"unique_key must be a non-empty string, got {unique_key!r}")
        if unique_key is None and is_idempotent(self._tasks.get(task_name), idempotent):
            unique_key = plan.idempotency_key(task_name, payload)
        (job_id,) = _transactional.store(
            self,
            task_name,
            [payload],
            unique_key=unique_key,
            metadata=self._payloads.metadata(metadata_text(metadata)),
            max_pending=self._max_pending.get(opts["queue"]),
            result_ttls=result_ttls(result_ttl, None, 1),
            **opts,
        )
        if self._dispatcher is not None:
            self._emit_enqueued(job_id, task_name, opts["queue"])
        return JobResult(self, job_id)  # type: ignore[arg-type]

    def enqueue_many(
        self,
        task_name: str,
        args_list: list[tuple],
        kwargs_list: list[dict] | None = None,
        priority: int | None = None,
        delay: float | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        metadata: Any = None,
        unique_keys: list[str | None] | None = None,
        idempotent: bool | None = None,
        *,
        notes: dict[str, Any] | None = None,
        notes_list: list[dict[str, Any] | None] | None = None,
        expires: float | None = None,
        result_ttl: float | None = None,
        result_ttl_list: list[float | None] | None = None,
        connection: Any = None,
    ) -> list[JobResult]:
        """Stores many jobs of one task in one transaction. ``unique_keys`` gives each job
        a key (None for none); an item whose key a pending or running job holds returns that
        job. With ``max_pending`` on the queue, a batch that would exceed it stores nothing.
        ``notes`` and ``result_ttl`` apply to every job; ``notes_list`` and
        ``result_ttl_list`` (one entry per job) win over them. ``connection``: write the
        jobs through the application's connection, inside its transaction (``Queue.using``)."""
        if connection is not None:
            with self.using(connection):  # type: ignore[attr-defined]
                return self.enqueue_many(
                    task_name, args_list, kwargs_list, priority, delay, queue, max_retries, timeout,
                    metadata, unique_keys, idempotent, notes=notes, notes_list=notes_list,
                    expires=expires, result_ttl=result_ttl, result_ttl_list=result_ttl_list,
                )  # fmt: skip
        args_list = list(args_list)
        if kwargs_list is not None:
            kwargs_list = list(kwargs_list)
            if len(kwargs_list) != len(args_list):
                raise ValueError("kwargs_list must be as long as args_list")
        if notes_list is not None:
            notes_list = list(notes_list)
            if len(notes_list) != len(args_list):
                raise ValueError("notes_list must be as long as args_list")
        ttls = result_ttls(result_ttl, result_ttl_list, len(args_list))
        if self._test_results is not None:
            inline = dict(job_options(priority, delay, queue, max_retries, timeout, None, metadata))
            return [
                self._run_inline(task_name, a, kwargs_list[i] if kwargs_list else {}, inline)  # type: ignore[misc]
                for i, a in enumerate(args_list)
            ]
        if unique_keys is not None:
            unique_keys = check_unique_keys(unique_keys, len(args_list))
        task = self._tasks.get(task_name)
        if notes is not None or notes_list is not None or expires is not None or (task and task.expires):
            run = run_options(job_options(priority, delay, queue, max_retries, timeout))
            specs = [
                self._job_spec(
                    task_name, a, kwargs_list[i] if kwargs_list else {}, metadata=metadata,
                    unique_key=unique_keys[i] if unique_keys is not None else None,
                    idempotent=idempotent,
                    notes=notes_list[i] if notes_list is not None else notes, expires=expires,
                    result_ttl=ttls[i] if ttls else None, **run,
                )
                for i, a in enumerate(args_list)
            ]  # fmt: skip
            return self._enqueue_specs(specs) if specs else []
        chain = self._enqueue_chain(task_name)
        if (chain or (task is not None and task._gate is not None)) and args_list:
            options = job_options(priority, delay, queue, max_retries, timeout, None, metadata)
            return self._enqueue_many_through(
                chain, task_name, args_list, kwargs_list, options, unique_keys, idempotent, ttls
            )
        opts = self._options(task_name, priority, delay, queue, max_retries, timeout)
        plan = self._plan_for(task_name)
        payloads = [
            plan.dump_call(task_name, a, kwargs_list[i] if kwargs_list else {})
            for i, a in enumerate(args_list)
        ]
        if not payloads:
            return []
        keys = unique_keys_for(self._tasks.get(task_name), task_name, payloads, unique_keys, idempotent, plan)
        ids = _transactional.store(
            self,
            task_name,
            payloads,
            metadata=self._payloads.metadata(metadata_text(metadata)),
            unique_keys=keys,
            max_pending=self._max_pending.get(opts["queue"]),
            result_ttls=ttls,
            **opts,
        )
        if self._dispatcher is not None:
            for i in ids:
                self._emit_enqueued(i, task_name, opts["queue"])
        return [JobResult(self, i) for i in ids]  # type: ignore[arg-type]

    def _enqueue_many_through(
        self,
        chain: tuple[TaskMiddleware, ...],
        task_name: str,
        args_list: list[tuple],
        kwargs_list: list[dict] | None,
        given: JobOptions,
        unique_keys: list[str | None] | None = None,
        idempotent: bool | None = None,
        ttls: list[float | None] | None = None,
    ) -> list[JobResult]:
        """``enqueue_many`` with ``on_enqueue`` middleware: called once per job; jobs whose
        edited options agree are stored together, in one transaction per distinct set."""
        groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
        task = self._tasks.get(task_name)
        gate = task._gate if task is not None else None
        for i, a in enumerate(args_list):
            kw = kwargs_list[i] if kwargs_list else {}
            options: dict[str, Any] = dict(self._on_enqueue(chain, task_name, a, kw, given))
            if gate is not None:
                # Asked for every job before any is stored: one Cancel stores none of them.
                options["delay"] = gate.at_enqueue(
                    self, task, a, kw, options["priority"], options["delay"], options["queue"]
                )
            if options.pop("unique_key") is not None:
                raise ValueError("on_enqueue may not set unique_key in enqueue_many")
            key = repr(sorted(options.items()))
            groups.setdefault(key, (options, []))[1].append(i)
        out: list[JobResult | None] = [None] * len(args_list)
        for options, indexes in groups.values():
            opts = self._options(
                task_name,
                options["priority"],
                options["delay"],
                options["queue"],
                options["max_retries"],
                options["timeout"],
            )
            plan = self._plan_for(task_name)
            payloads = [
                plan.dump_call(task_name, args_list[i], kwargs_list[i] if kwargs_list else {})
                for i in indexes
            ]
            keys = unique_keys_for(
                self._tasks.get(task_name),
                task_name,
                payloads,
                [unique_keys[i] for i in indexes] if unique_keys is not None else None,
                idempotent,
                plan,
            )
            ids = _transactional.store(
                self,
                task_name,
                payloads,
                metadata=self._payloads.metadata(metadata_text(options["metadata"])),
                unique_keys=keys,
                max_pending=self._max_pending.get(opts["queue"]),
                result_ttls=[ttls[i] for i in indexes] if ttls is not None else None,
                **opts,
            )
            for i, job_id in zip(indexes, ids):
                out[i] = JobResult(self, job_id)  # type: ignore[arg-type]
                if self._dispatcher is not None:
                    self._emit_enqueued(job_id, task_name, opts["queue"])
        return [j for j in out if j is not None]
