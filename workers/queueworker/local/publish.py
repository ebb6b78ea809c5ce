"""Publishing tasks by name, for `qw enqueue` and the demo burst of `qw up --demo`.

Tasks go through a make_app app, so they carry the publish stamp the queue stats and the workers measure wait
time with. Without an explicit queue, the routes document decides (first matching pattern wins), as it
does for every producer; a task no route matches is refused rather than left on a queue nobody reads.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from queueworker.contract import redact
from queueworker.local.workdir import RedisEndpoint


class PublishError(ValueError):
    """Bad input for a publish; the message names the argument."""


def parse_arg(raw: str) -> Any:
    """A positional task argument: JSON when it parses (1, 2.5, true, "s", [..], {..}), else the string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_kwargs(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PublishError(f"--kwargs: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise PublishError(
            f"--kwargs: expected a JSON object like '{{\"x\": 1}}', got {type(value).__name__}"
        )
    return value


def load_routes(path: Path | None) -> list[tuple[str, str]]:
    if path is None or not path.exists():
        return []
    doc = json.loads(path.read_text())
    return [(str(r["pattern"]), str(r["queue"])) for r in doc.get("routes", [])]


def route(task: str, routes: Sequence[tuple[str, str]]) -> str | None:
    for pattern, queue in routes:
        if pattern == task or ("*" in pattern and fnmatch.fnmatchcase(task, pattern)):
            return queue
    return None


def resolve_queue(task: str, queue: str | None, routes: Sequence[tuple[str, str]], where: str) -> str:
    if not task or not task.strip():
        raise PublishError("TASK: a task name is required, like tasks.add")
    if queue is not None:
        if not queue.strip():
            raise PublishError("--queue: must not be empty")
        return queue
    routed = route(task, routes)
    if routed is None:
        known = ", ".join(sorted({p for p, _ in routes})) or "none"
        raise PublishError(
            f"TASK: no route matches {task!r} (routes from {where}: {known}); pass --queue QUEUE"
        )
    return routed


def publish(
    endpoint_url: str,
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    queue: str,
    count: int = 1,
) -> list[str]:
    """Send `count` copies of task(*args, **kwargs) to queue; return their task ids."""
    from queueworker.worker.app import make_app

    app = make_app(
        "qw-enqueue",
        broker_url=endpoint_url,
        redbeat_redis_url=endpoint_url,
        broker_connection_max_retries=3,
        task_routes=None,
    )
    ids = []
    try:
        with app.producer_or_acquire() as producer:
            for _ in range(count):
                result = app.send_task(
                    task, args=list(args), kwargs=dict(kwargs), queue=queue, producer=producer
                )
                ids.append(str(result.id))
    finally:
        app.close()
    return ids


def display_url(endpoint: RedisEndpoint | None, url: str) -> str:
    return endpoint.display if endpoint is not None else redact(url)
