"""Reading stored results back through the job's payload plan (``taskito.payload.plan``)."""

from __future__ import annotations

from typing import Any

from taskito.exceptions import CryptoError, SerializationError
from taskito.facets.base import QueueState


class Results(QueueState):
    """Reading a finished job's stored result (``_plan_for`` is in ``facets.base``)."""

    def _load_result(self, job_id: str, data: bytes | None) -> Any:
        """A finished job's stored result; CryptoError if it does not verify or decrypt."""
        if data is None:
            return None
        plan = self._payloads.queue_plan
        if self._payloads.per_task_serializer:
            job = self._inner.get_job(job_id)
            if job is not None:
                plan = self._plan_for(job["task_name"])
        try:
            return plan.load_result(data, job_id)
        except CryptoError as exc:
            raise CryptoError(f"the result of job {job_id} was not read: {exc}") from None
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"cannot read the result of job {job_id}: {type(exc).__name__}: {exc}"
            ) from exc
