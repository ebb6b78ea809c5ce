"""The worker: make_app() (app) and the hooks it installs on every app (hooks), one concern per module.

- app:         make_app(): the Celery app from QUEUEWORKER_* variables with the platform's defaults
- env:         the worker's QUEUEWORKER_* numbers
- stamps:      `qw_published_at` header on every publish (before_task_publish signal)
- task:        the task base class: redelivery cap (limits) and per-task metrics without signal dispatch
- limits:      the redelivery cap (a message redelivered too often is rejected)
- fetch:       the atomic fetch: a message is always in a queue, held by a named worker, or acknowledged
  (fetch_lua: its scripts; lease: the worker's liveness key the fetch's holders are checked against)
- transport:   kombu's Redis transport made reliable: malformed messages are dropped, logged and
  counted; reconnects, restores, acks and rejects cannot stop the worker
- poolfds:     the prefork pool survives a reconnect after one of its processes exited
- metrics:     task counters and histograms, prometheus-client multiprocess mode, /metrics server
  (metricbatch: batched observations)
- heartbeats:  per-queue heartbeat records and completion counters in Redis (worker bootstep)
- healthfile:  the health file the pod's probes read (consumer-loop bootstep + heartbeats)
- health:      `qw probe liveness|readiness`: the pod's exec probes, answered from that file
- shutdown:    SIGTERM finishes running tasks, bounded: past the soft-shutdown timeout they are requeued
- brokerclient: one plain Redis client per process for the hooks' own keys
"""
