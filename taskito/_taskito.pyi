# Stubs for the compiled engine module (rust/py/queue.rs).
from typing import Any, Callable, Optional, final

__all__ = ["QueueCore", "__version__", "SCHEMA_VERSION"]

__version__: str
SCHEMA_VERSION: int

_Dispatch = Callable[[str, bytes, str, str, int, int, str], tuple[Any, ...]]
_LocalRun = tuple[str, str, Optional[str], Optional[str]]
_Windows = tuple[Optional[float], Optional[float], Optional[float], Optional[float], Optional[float], bool]
_Report = tuple[Optional[int], Optional[int], Optional[int], Optional[int], Optional[int], bool, int]

@final
class QueueCore:
    def __new__(
        cls,
        db_path: str,
        durability: str = "normal",
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
    ) -> list[str]: ...
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
    def retention_preview(
        self, windows: _Windows
    ) -> tuple[tuple[int, int, int, int, int], int]: ...
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
    def list_jobs_after(
        self,
        status: Optional[str] = None,
        queue: Optional[str] = None,
        task_name: Optional[str] = None,
        limit: int = 50,
        after: Optional[str] = None,
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
    ) -> int: ...
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
