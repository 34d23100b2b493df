"""Tasks for Celery on the local Redis (broker and result backend), default settings.

The driver and `celery -A celery_app worker` both import this module."""

import logging

from celery import Celery
from redis_support import REDIS_URL

logging.disable(logging.INFO)

app = Celery("celery_app", broker=REDIS_URL, backend=REDIS_URL)
app.conf.broker_connection_retry_on_startup = True


@app.task(name="echo")
def echo(value):
    return value
