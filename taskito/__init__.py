"""taskito: a task queue for Python with a Rust engine and a SQLite store.

from taskito import Queue
queue = Queue(db_path="tasks.db")

@queue.task()
def add(a, b):
    return a + b

job = add.delay(2, 3)      # stored; a worker runs it
queue.run_worker()         # or: taskito worker --app myapp:queue
"""

from taskito import log_config
from taskito._taskito import __version__
from taskito.app import Queue
from taskito.batching import BatchItemResult, BatchPartialFailureError, BatchResultTypeError
from taskito.canvas import Signature, chain, chord, chunks, group, starmap
from taskito.codecs import AesGcmCodec, CodecSerializer, GzipCodec, HmacCodec, PayloadCodec
from taskito.context import LogLevel, current_job
from taskito.events import EventType
from taskito.exceptions import (
    CircuitBreakerOpenError,
    CryptoError,
    DatabaseError,
    JobNotFoundError,
    MaxRetriesExceededError,
    NotesValidationError,
    PredicateRejectedError,
    QueueError,
    QueueFullError,
    RateLimitExceededError,
    SerializationError,
    SoftTimeoutError,
    TaskCancelledError,
    TaskFailedError,
    TaskitoError,
    TaskTimeoutError,
)
from taskito.log_config import configure as configure_logging
from taskito.middleware import TaskMiddleware
from taskito.notes import MAX_NOTE_FIELDS
from taskito.pagination import Page
from taskito.periodic import PeriodicInfo
from taskito.predicates import PredicateAction
from taskito.result import JobResult
from taskito.retention import EffectiveRetention, Retention, RetentionPreview
from taskito.serializers import (
    CborSerializer,
    CloudpickleSerializer,
    EncryptedSerializer,
    JsonSerializer,
    MsgPackSerializer,
    Serializer,
    SignedSerializer,
    SmartSerializer,
)
from taskito.task import TaskWrapper
from taskito.testing import TestResult, TestResults

__all__ = [
    "Queue",
    "JobResult",
    "TaskWrapper",
    "current_job",
    "LogLevel",
    "TaskMiddleware",
    "Page",
    "Retention",
    "RetentionPreview",
    "EffectiveRetention",
    "configure_logging",
    "log_config",
    "TaskitoError",
    "TaskFailedError",
    "MaxRetriesExceededError",
    "TaskCancelledError",
    "TaskTimeoutError",
    "SerializationError",
    "CryptoError",
    "DatabaseError",
    "JobNotFoundError",
    "QueueFullError",
    "NotesValidationError",
    "PredicateRejectedError",
    "SoftTimeoutError",
    "CircuitBreakerOpenError",
    "RateLimitExceededError",
    "QueueError",
    "MAX_NOTE_FIELDS",
    "PeriodicInfo",
    "PredicateAction",
    "BatchItemResult",
    "BatchPartialFailureError",
    "BatchResultTypeError",
    "EventType",
    "Signature",
    "chain",
    "group",
    "chord",
    "starmap",
    "chunks",
    "TestResult",
    "TestResults",
    "Serializer",
    "SmartSerializer",
    "CloudpickleSerializer",
    "JsonSerializer",
    "MsgPackSerializer",
    "CborSerializer",
    "SignedSerializer",
    "EncryptedSerializer",
    "PayloadCodec",
    "GzipCodec",
    "HmacCodec",
    "AesGcmCodec",
    "CodecSerializer",
    "__version__",
]
