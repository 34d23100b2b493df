# Stubs for the compiled engine module (rust/py/queue.rs).
from typing import Any, Callable, Optional, final

__all__ = ["AsyncLane", "QueueCore", "__version__", "SCHEMA_VERSION", "flush_logs", "written_off_threads"]

__version__: str
SCHEMA_VERSION: int

_Dispatch = Callable[..., tuple[Any, ...]]
# (task_name, payload, queue, priority, delay, max_retries, retry_backoff, timeout,
#  unique_key, metadata) and (notes_json, expires, depends_on_ids, batch_indexes, pass_result)
_JobSpec = tuple[str, bytes, str, int, float, int, float, float, Optional[str], Optional[str]]
_LinkSpec = tuple[Optional[str], Optional[float], list[str], list[int], int, Optional[float]]
_LocalRun = tuple[str, str, Optional[str], Optional[str]]
_Windows = tuple[Optional[float], Optional[float], Optional[float], Optional[float], Optional[float], bool]
_Report = tuple[Optional[int], Optional[int], Optional[int], Optional[int], Optional[int], bool, int]

@final
class QueueCore:
    def __new__(
        cls,
        db_path: str,
        durability: str = "normal",
        file_mode: int = 0o600,
        backend: str = "sqlite",
        db_url: Optional[str] = None,
        schema: str = "taskito",
        pool_size: Optional[int] = None,
        notify: bool = True,
    ) -> QueueCore: ...
    def close(self) -> None: ...
    @property
    def db_path(self) -> str: ...
    def enqueue(
        self,
        task_name: str,
        payloads: list[bytes],
        queue: str,
        priority: int,
        delay: float,
        max_retries: int,
        retry_backoff: float,
        timeout: float,
        unique_key: Optional[str] = None,
        metadata: Optional[str] = None,
        unique_keys: Optional[list[Optional[str]]] = None,
        max_pending: Optional[int] = None,
        result_ttls: Optional[list[Optional[float]]] = None,
    ) -> list[str]: ...
    @staticmethod
    def enqueue_plan(
        schema: str,
        task_name: str,
        payloads: list[bytes],
        queue: str,
        priority: int,
        delay: float,
        max_retries: int,
        retry_backoff: float,
        timeout: float,
        unique_key: Optional[str] = None,
        metadata: Optional[str] = None,
        unique_keys: Optional[list[Optional[str]]] = None,
        result_ttls: Optional[list[Optional[float]]] = None,
    ) -> dict[str, Any]: ...
    def get_job(self, id: str) -> Optional[dict[str, Any]]: ...
    def get_outcome(self, id: str) -> Optional[tuple[str, Optional[bytes], Optional[str]]]: ...
    def wait(self, id: str, timeout: float, poll_interval: float) -> Optional[str]: ...
    def list_jobs(
        self,
        status: Optional[str] = None,
        queue: Optional[str] = None,
        task_name: Optional[str] = None,
        worker_id: Optional[str] = None,
        limit: int = 100,
        offset: int = 0,
        metadata_like: Optional[str] = None,
        error_like: Optional[str] = None,
        created_after: Optional[int] = None,
        created_before: Optional[int] = None,
    ) -> list[dict[str, Any]]: ...
    def counts(self) -> list[tuple[str, str, int]]: ...
    def oldest_pending(self) -> list[tuple[str, int]]: ...
    def job_errors(self, id: str) -> list[dict[str, Any]]: ...
    def cancel_job(self, id: str) -> bool: ...
    def update_progress(self, id: str, progress: int) -> None: ...
    def dead_letters(self, limit: int, offset: int) -> list[dict[str, Any]]: ...
    def retry_dead(self, dead_id: str) -> str: ...
    def purge_dead(self, older_than: float) -> int: ...
    def purge_finished(self, older_than: float) -> int: ...
    def workers(self) -> list[dict[str, Any]]: ...
    def delete_dead(self, dead_id: str) -> bool: ...
    def requeue_job(self, job_id: str) -> bool: ...
    def write_task_log(
        self, job_id: str, task_name: str, level: str, message: str, extra: Optional[str] = None
    ) -> None: ...
    def task_logs(self, job_id: str) -> list[dict[str, Any]]: ...
    def retention_preview(self, windows: _Windows) -> tuple[tuple[int, int, int, int, int], int]: ...
    def retention_report(self) -> Optional[_Report]: ...
    def archive(self, older_than: float) -> int: ...
    def list_archived(self, limit: int, offset: int) -> list[dict[str, Any]]: ...
    def list_archived_after(self, limit: int, after: Optional[str] = None) -> list[dict[str, Any]]: ...
    def purge_completed(self, older_than: float) -> int: ...
    def query_logs(
        self,
        task_name: Optional[str] = None,
        level: Optional[str] = None,
        since: float = 3600.0,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...
    def pause_queue(self, queue: str) -> bool: ...
    def resume_queue(self, queue: str) -> bool: ...
    def paused_queues(self) -> list[str]: ...
    def setting_get(self, key: str) -> Optional[tuple[str, int]]: ...
    def setting_put(self, key: str, value: str, expected: Optional[int] = None) -> Optional[int]: ...
    def setting_delete(self, key: str) -> bool: ...
    def settings_list(self, prefix: str = ...) -> list[tuple[str, str, int]]: ...
    def list_jobs_after(
        self,
        status: Optional[str] = None,
        queue: Optional[str] = None,
        task_name: Optional[str] = None,
        limit: int = 50,
        after: Optional[str] = None,
        metadata_like: Optional[str] = None,
        error_like: Optional[str] = None,
        created_after: Optional[int] = None,
        created_before: Optional[int] = None,
    ) -> tuple[list[dict[str, Any]], Optional[str]]: ...
    def dead_letters_after(
        self, limit: int = 10, after: Optional[str] = None
    ) -> tuple[list[dict[str, Any]], Optional[str]]: ...
    def throughput(self, since_ms: int, bucket_ms: int) -> list[tuple[int, int]]: ...
    def job_payload(self, id: str) -> Optional[bytes]: ...
    def run_worker(
        self,
        dispatch: _Dispatch,
        workers: int,
        queues: Optional[list[str]],
        worker_id: str,
        hostname: str,
        pid: int,
        poll_interval_ms: int,
        drain_timeout: float,
        run_once: bool = False,
        max_jobs: Optional[int] = None,
        heartbeat_interval: float = 2.0,
        stale_after: float = 10.0,
        retention: Optional[_Windows] = None,
        timeout_grace: float = 1.0,
        async_lane: Optional[AsyncLane] = None,
        prefork: Optional[
            tuple[
                list[str],
                list[tuple[str, str]],
                Optional[int],
                Optional[Callable[..., None]],
                Optional[Callable[..., None]],
            ]
        ] = None,
    ) -> int: ...
    def arm(self) -> None: ...
    def request_shutdown(self) -> None: ...
    def process_one(
        self,
        dispatch: _Dispatch,
        queues: Optional[list[str]],
        worker_id: str,
        hostname: str,
        pid: int,
        ident: int,
        heartbeat_interval: float = 2.0,
    ) -> Optional[_LocalRun]: ...
    def execute(
        self,
        dispatch: _Dispatch,
        job_id: str,
        worker_id: str,
        hostname: str,
        pid: int,
        ident: int,
        heartbeat_interval: float = 2.0,
    ) -> Optional[_LocalRun]: ...
    # Periodic schedules and flow control (rust/py/queue_periodic.rs).
    @staticmethod
    def check_cron(cron: str, timezone: Optional[str] = None) -> str: ...
    @staticmethod
    def next_cron_time(cron: str, timezone: Optional[str], after_ms: int) -> Optional[int]: ...
    def register_periodic(
        self, schedules: list[tuple[str, str, str, str, str, bytes, int, int, float, float]]
    ) -> None: ...
    def list_periodic(self) -> list[dict[str, Any]]: ...
    def set_periodic_enabled(self, name: str, enabled: bool) -> None: ...
    def delete_periodic(self, name: str) -> None: ...
    def register_task_limits(
        self,
        limits: list[tuple[str, Optional[int], Optional[int], Optional[int]]],
        unlimited: list[str],
    ) -> None: ...
    # rust/py/queue_canvas.rs
    def enqueue_linked(
        self,
        jobs: list[tuple[_JobSpec, _LinkSpec]],
        max_pending: Optional[dict[str, int]] = None,
    ) -> list[str]: ...
    def job_links(self, id: str) -> tuple[list[str], list[str]]: ...
    def cancel_running_job(self, id: str) -> bool: ...
    def cancel_requested(self, id: str) -> bool: ...
    def expire_due(self) -> int: ...
    def replay(self, id: str) -> str: ...

def flush_logs() -> None: ...
def written_off_threads() -> int: ...

@final
class AsyncLane:
    def __new__(cls, names: list[str], concurrency: int, grace: float) -> AsyncLane: ...
    def next_job(
        self,
    ) -> Optional[
        tuple[str, bytes, str, str, int, int, str, float, Optional[tuple[int, list[Optional[bytes]]]]]
    ]: ...
    def finish(self, job_id: str, answer: tuple[Any, ...]) -> bool: ...
    def close(self) -> None: ...
