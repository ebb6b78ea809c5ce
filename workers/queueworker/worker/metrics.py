"""Task metrics of one worker's process tree, served on QUEUEWORKER_METRICS_PORT (default 9809).

Names and labels follow celery-exporter where the meaning is the same (`celery_task_*_total`,
`celery_task_runtime`, label `name` = task name, `queue_name` = the queue it came from; no hostname:
Prometheus adds the pod). Prefork children count in their own processes; prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR) adds them up and the main process serves the sum. A worker
started without PROMETHEUS_MULTIPROC_DIR gets a private temporary directory (in /dev/shm when there is
one), removed at exit; at start, files left by processes that are gone are removed. Every update writes
to an mmapped file: put PROMETHEUS_MULTIPROC_DIR on a memory-backed volume (an emptyDir with
`medium: Memory`), not on disk, or dirty-page writeback costs throughput. Updates are batched per
process (worker/metricbatch.py): a scrape lags by up to a second. QUEUEWORKER_METRICS_PORT=0 or "off"
disables serving.

Which process counts what: received and rejected-malformed in the main process (consumer), started,
succeeded, failed, retried, runtime and wait time where the task runs (a pool child under prefork).
Started, succeeded, runtime and wait are counted by the task base class (worker/task.py), without a
signal dispatch per task; runtime is observed for tasks that returned (succeeded or failed), not for an
attempt that ended in a retry or a reject.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery import bootsteps, signals, states
from celery.exceptions import Reject

from queueworker.worker.metricbatch import Batcher
from queueworker.worker.stamps import published_at, queue_of

log = logging.getLogger(__name__)

DEFAULT_PORT = 9809
BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    float("inf"),
)
LABELS = ("name", "queue_name")
MALFORMED = "(malformed)"

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


def _forked() -> None:
    """A pool child gets a lock of its own (see brokerclient._forked): the metrics server's thread may hold
    the parent's at fork time."""
    global _lock  # noqa: PLW0603 - the module lock itself is replaced in the child
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forked)
_private_dir: list[str] = []
_starts: dict[str, tuple[float, str]] = {}  # task id -> (monotonic start, queue), per process
RETURNED = frozenset({states.SUCCESS, states.FAILURE})
_children: dict[tuple[str, str, str], Any] = {}  # (metric, name, queue) -> labelled child, per process


def metrics_port() -> int | None:
    from queueworker.worker.settings import current

    raw = current().metrics_port.strip().lower()
    if raw in ("off", "false", "no", "0", "none"):
        return None
    return int(raw) if raw else DEFAULT_PORT


def prepare_multiproc_dir() -> str:
    """Point prometheus-client at a multiprocess directory (before any metric exists); clean it."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:  # in memory when possible: every metric update writes to these mmapped files
        shm = "/dev/shm"  # noqa: S108
        path = tempfile.mkdtemp(prefix="qw-metrics-", dir=shm if os.access(shm, os.W_OK) else None)
        _private_dir.append(path)
    Path(path).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    for file in Path(path).glob("*.db"):
        match = re.search(r"_(\d+)\.db$", file.name)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                file.unlink()
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # chosen at import time: choose again now
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def get() -> dict[str, Any]:
    """The metric objects, created on first use (after prepare_multiproc_dir in a worker)."""
    with _lock:
        if not _metrics:
            from prometheus_client import Counter, Histogram

            for event in ("received", "started", "succeeded", "failed", "retried", "rejected"):
                _metrics[event] = Counter(f"celery_task_{event}", f"Tasks {event}.", LABELS)
            _metrics["runtime"] = Histogram(
                "celery_task_runtime", "Task runtime in seconds.", LABELS, buckets=BUCKETS
            )
            _metrics["wait"] = Histogram(
                "queueworker_task_wait_seconds",
                "Seconds from publish (qw_published_at) to start.",
                LABELS,
                buckets=BUCKETS,
            )
        return _metrics


def child(metric: str, name: str, queue: str) -> Any:
    """The labelled metric, cached: `.labels()` validates and locks on every call."""
    key = (metric, name, queue)
    found = _children.get(key)
    if found is None:
        found = _children[key] = get()[metric].labels(name=name or "unknown", queue_name=queue or "unknown")
    return found


BATCH = Batcher(child)


def count(event: str, name: str, queue: str) -> None:
    BATCH.inc((event, name, queue))


def count_rejected(name: str, queue: str) -> None:
    count("rejected", name, queue)


def _task_name(sender: Any, task: Any = None) -> str:
    return str(getattr(task, "name", None) or getattr(sender, "name", None) or "unknown")


def on_received(request: Any = None, **_: Any) -> None:
    if request is not None:
        count("received", request.name, queue_of(request))


def task_started(task_id: str, name: str, request: Any) -> None:
    """A task starts in this process: count it, observe its wait, remember when and from which queue."""
    now = time.time()
    if len(_starts) > 10000:  # tasks that never returned (retried, rejected, or a crashed child's)
        _starts.clear()
    queue = queue_of(request)
    _starts[task_id] = (time.monotonic(), queue)
    stamp = published_at(request)
    wait = None if stamp is None else ("wait", name, queue)
    BATCH.add(("started", name, queue), wait, max(0.0, now - (stamp or now)))


def task_finished(task_id: str, name: str, state: str) -> None:
    """A task returned (succeeded or failed; a retry or reject is not a return): observe its runtime,
    count a success. Failures are counted by on_failure, which also sees those of the main process."""
    found = _starts.pop(task_id, None)
    if found is None or state not in RETURNED:
        return
    started, queue = found
    succeeded = ("succeeded", name, queue) if state == states.SUCCESS else None
    BATCH.add(succeeded, ("runtime", name, queue), time.monotonic() - started)


def on_prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
    """Signal fallback for tasks the base class does not count (worker/task.py)."""
    if task is not None and not getattr(task, "_qw_metrics_in_base", False):
        task_started(task_id, task.name, task.request)


def on_postrun(task_id: str = "", task: Any = None, state: str = "", **_: Any) -> None:
    if task is not None and not getattr(task, "_qw_metrics_in_base", False):
        task_finished(task_id, task.name, state)


def connect_task_signals() -> None:
    signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid="queueworker.metrics.on_prerun")
    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="queueworker.metrics.on_postrun")


def on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    if isinstance(exception, Reject):
        return  # counted as rejected where it was raised
    count("failed", sender.name, queue_of(sender.request))


def on_retry(sender: Any = None, request: Any = None, **_: Any) -> None:
    _starts.pop(getattr(request, "id", None) or "", None)
    count("retried", _task_name(sender), queue_of(request))


def on_unknown(message: Any = None, name: str = "", **_: Any) -> None:
    count_rejected(name, _message_queue(message))


def on_rejected(message: Any = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    count_rejected(str(headers.get("task") or MALFORMED), _message_queue(message))


def _message_queue(message: Any) -> str:
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or "unknown")


class MetricsDir(bootsteps.Step):
    """Worker step: the multiprocess directory, prepared when the worker is built. Celery builds every step
    (`__init__`) before it creates any (`create`: the prefork pool forks there), so every pool process
    inherits the directory, and no metric exists before it."""

    label = "QueueWorker metrics directory"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        prepare_multiproc_dir()


class MetricsServer(bootsteps.StartStopStep):
    """Worker step: serves the multiprocess sum (of the directory it requires) from the main process."""

    label = "QueueWorker metrics"
    requires = (MetricsDir,)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.server: Any = None

    def start(self, worker: Any) -> None:
        port = metrics_port()
        if port is None:
            return
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        get()  # families exist (at zero) before the first task
        from queueworker.worker.settings import current

        addr = current().metrics_addr
        self.server, _thread = start_http_server(port, addr=addr, registry=registry)
        log.info("metrics on %s:%d", addr, port)

    def stop(self, worker: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def on_worker_shutdown(**_: Any) -> None:
    BATCH.flush()
    for path in _private_dir:
        shutil.rmtree(path, ignore_errors=True)


def on_child_exit(pid: int | None = None, **_: Any) -> None:
    BATCH.flush()  # billiard sends this in the exiting pool child: write what it counted last
    from prometheus_client import multiprocess

    with contextlib.suppress(Exception):
        multiprocess.mark_process_dead(pid or os.getpid())


def connect() -> None:
    """Task-level counts (received, failed, retried, unknown, rejected) as they happen; a pool process's last
    batch as it exits (no bootstep runs in a pool process); and at worker_shutdown, once the pool has drained,
    the main process's last batch and the private directory's removal."""
    hooks = (
        (signals.worker_shutdown, on_worker_shutdown),
        (signals.worker_process_shutdown, on_child_exit),
        (signals.task_received, on_received),
        (signals.task_failure, on_failure),
        (signals.task_retry, on_retry),
        (signals.task_unknown, on_unknown),
        (signals.task_rejected, on_rejected),
    )
    for signal, receiver in hooks:
        signal.connect(receiver, weak=False, dispatch_uid=f"queueworker.metrics.{receiver.__name__}")
