"""A task's own retry rules (exception filters, per-retry delays, a delay cap, a retry
budget) and its circuit breaker, with their state in the queue's shared settings store so
that every worker process on the database sees the same budget and breaker."""
