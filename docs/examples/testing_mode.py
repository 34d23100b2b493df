from taskito import Queue, chain

queue = Queue(db_path="testmode.db")


@queue.task()
def add(a, b):
    return a + b


@queue.task()
def fail():
    raise ValueError("nope")


with queue.test_mode() as results:
    add.delay(1, 2)
    fail.delay()
    chain(add.s(1, 1), add.s(10)).apply()

print([r.return_value for r in results])                 # [3, None, 2, 12]
print(len(results.succeeded), results.failed[0].error)   # 3 nope
print(results[1].status, results[1].retry_count)         # dead 3: ran 4 times, as a worker would
print(queue.stats()["pending"])                          # 0: nothing was stored
