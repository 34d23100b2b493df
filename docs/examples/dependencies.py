from taskito import Queue

queue = Queue(db_path="deps.db")


@queue.task(max_retries=0)
def fetch(url):
    if "bad" in url:
        raise ValueError(f"cannot fetch {url}")
    return len(url)


@queue.task()
def report(name):
    return f"report {name}"


a = fetch.delay("https://example.com/a")
b = fetch.delay("https://example.com/b")
done = report.apply_async(("daily",), depends_on=[a, b])   # ids or JobResults
broken = fetch.delay("https://bad.example")
skipped = report.apply_async(("never",), depends_on=broken.id)
print(done.status, done.dependencies == [a.id, b.id])        # pending True

queue.run_worker(run_once=True)
print(done.result(), broken.status, skipped.status)         # report daily dead cancelled
