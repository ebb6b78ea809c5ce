"""Counting helpers for the reliability suite: a task module that records each run in a separate
recorder Redis (HINCRBY per task tag, so a broker fault never loses the record of a run), a publisher,
the published/completed/lost/run-twice report, and process memory read from /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery
from queueworker import make_app

#: The recorder and the counting task every reliability task module defines after its `app`: each run
#: is recorded in QW_RECORDER_URL's hash `rel:runs` (field = tag, value = runs).
COUNT_TASK = """
_client = []


def recorder():
    if not _client or _client[0][0] != os.getpid():
        _client[:] = [(os.getpid(), redis.Redis.from_url(os.environ["QW_RECORDER_URL"]))]
    return _client[0][1]


@app.task(name="reltasks.count")
def count(tag, seconds=0.0):
    if seconds:
        time.sleep(seconds)
    recorder().hincrby("rel:runs", tag, 1)
    return tag
"""
#: A task module of an app team's own (make_app) with the counting task.
COUNTING_TASKS = (
    """
import os
import time

import redis

from queueworker import make_app

app = make_app("reltasks")
"""
    + COUNT_TASK
)
RUNS = "rel:runs"


def write_counting_module(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "reltasks.py").write_text(COUNTING_TASKS)
    return directory


def producer(broker_url: str, main: str = "reliability-producer") -> Celery:
    """A make_app app publishing to `broker_url` (the environment is restored afterwards)."""
    saved = os.environ.get("QUEUEWORKER_BROKER_URL")
    os.environ["QUEUEWORKER_BROKER_URL"] = broker_url
    try:
        return make_app(main)
    finally:
        if saved is None:
            os.environ.pop("QUEUEWORKER_BROKER_URL", None)
        else:
            os.environ["QUEUEWORKER_BROKER_URL"] = saved


def publish(app: Celery, tags: Iterable[str], queue: str, seconds: float = 0.0) -> list[str]:
    sent = []
    for tag in tags:
        app.send_task("reltasks.count", args=[tag, seconds], queue=queue)
        sent.append(tag)
    return sent


def runs(recorder: redis.Redis) -> dict[str, int]:
    return {text(k): int(v) for k, v in recorder.hgetall(RUNS).items()}


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Tally:
    published: int
    completed: int
    lost: int
    twice: int

    def line(self, what: str) -> str:
        return (
            f"{what}: published={self.published} completed={self.completed} lost={self.lost} "
            f"run-twice={self.twice}"
        )


def tally(published: Iterable[str], recorder: redis.Redis) -> Tally:
    done = runs(recorder)
    sent = list(published)
    return Tally(
        published=len(sent),
        completed=sum(1 for t in sent if done.get(t, 0) >= 1),
        lost=sum(1 for t in sent if done.get(t, 0) == 0),
        twice=sum(1 for t in sent if done.get(t, 0) > 1),
    )


def report(what: str, published: Iterable[str], recorder: redis.Redis) -> Tally:
    result = tally(published, recorder)
    print(f"\n[reliability] {result.line(what)}")
    return result


def wait_all_ran(published: list[str], recorder: redis.Redis, timeout: float) -> bool:
    """Wait until every published tag ran at least once; False (not an exception) on timeout."""
    deadline = time.monotonic() + timeout
    wanted = set(published)
    while time.monotonic() < deadline:
        if wanted <= {k for k, v in runs(recorder).items() if v >= 1}:
            return True
        time.sleep(0.2)
    return False


# -- memory ---------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of one process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(c) for c in text]
    except (FileNotFoundError, ProcessLookupError):
        return []
    return found


def tree_rss_kib(pid: int) -> tuple[int, int]:
    """(RSS of the process, RSS of its descendants) in KiB."""
    stack, total = children(pid), 0
    while stack:
        child = stack.pop()
        total += rss_kib(child)
        stack += children(child)
    return rss_kib(pid), total
