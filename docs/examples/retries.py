from taskito import MaxRetriesExceededError, Queue, TaskFailedError, TaskitoError, current_job

queue = Queue(db_path="retries.db")


@queue.task(max_retries=2, retry_backoff=0.01)
def flaky(n: int) -> int:
    if current_job.retry_count < n:
        raise ConnectionError(f"attempt {current_job.retry_count} failed")
    return current_job.retry_count


ok = flaky.delay(1)          # fails once, then succeeds
doomed = flaky.delay(10)     # out of retries after 3 runs: dead-lettered

while {ok.status, doomed.status} - {"complete", "dead"}:   # retries wait up to 10 ms here
    queue.run_worker(run_once=True)

print(ok.result(timeout=10))                      # 1
for attempt in queue.job_errors(doomed.id):       # one row per failed run
    print(attempt["attempt"], attempt["error"])
try:
    doomed.result(timeout=10)
except MaxRetriesExceededError as e:              # not a TaskFailedError: catch both, or TaskitoError
    print(type(e).__name__, e.errtype, isinstance(e, TaskitoError), isinstance(e, TaskFailedError))
print(len(queue.dead_letters()), "dead letter")
