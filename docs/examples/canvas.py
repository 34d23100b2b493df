from taskito import Queue, chain, chord, chunks, group, starmap

queue = Queue(db_path="flows.db")


@queue.task()
def add(a, b):
    return a + b


@queue.task()
def total(values):
    return sum(values)


last = chain(add.s(1, 2), add.s(10), add.si(5, 5)).apply()   # stored at once, returns at once
summed = chord(group(add.s(1, 1), add.s(2, 2)), total.s()).apply()
parts = chunks(total, list(range(5)), 2).apply()               # 3 jobs: total([0, 1]), ...
pairs = starmap(add, [(1, 2), (3, 4)]).apply()                 # 2 jobs
batch = add.map([(1, 1), (2, 2)])                              # enqueue_many, one transaction

queue.run_worker(run_once=True)
print(last.result(), summed.result())                         # 10 6
print([p.result() for p in parts], [p.result() for p in pairs], [b.result() for b in batch])
# [1, 5, 4] [3, 7] [2, 4]
