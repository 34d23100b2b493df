import datetime

from taskito import JsonSerializer, Queue, SmartSerializer

queue = Queue(db_path="serializers.db", serializer=SmartSerializer())   # the default, spelled out


@queue.task()
def describe(when, pair):
    return f"{type(when).__name__} {type(pair).__name__}"   # pickle keeps datetimes and tuples


@queue.task(serializer=JsonSerializer())                     # plain types only; tuples become lists
def describe_json(pair):
    return type(pair).__name__


a = describe.delay(datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc), (1, 2))
b = describe_json.delay((1, 2))
fn_job = queue.enqueue(describe.name, args=(lambda: 0, (3,)))          # cloudpickle carries a lambda
queue.run_worker(run_once=True)
print(a.result(), b.result(), fn_job.result())   # datetime tuple list function tuple
