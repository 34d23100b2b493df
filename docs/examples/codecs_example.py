from taskito import AesGcmCodec, GzipCodec, JsonSerializer, Queue

KEY = bytes(range(32))          # load a real key from your secret store
queue = Queue(db_path="private.db", codec=AesGcmCodec(KEY), codecs={"zip": GzipCodec()})


@queue.task(codecs=["zip"])     # arguments gzipped, then encrypted
def word_count(text: str) -> int:
    return len(text.split())


@queue.task(serializer=JsonSerializer())
def total(xs: list) -> int:
    return sum(xs)


a, b = word_count.delay("to be or not to be " * 1000), total.delay([1, 2, 3])
queue.run_worker(run_once=True)
print(a.result(timeout=10), b.result(timeout=10))   # 6000 6
