"""Tasks for RQ on the local Redis. The driver and `rq worker` both import this module."""

import redis
from redis_support import REDIS_URL
from rq import Queue

conn = redis.Redis.from_url(REDIS_URL)
queue = Queue("default", connection=conn)


def echo(value):
    return value
