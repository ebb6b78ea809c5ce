"""The routes document: which tasks go to which queue, for producers.

The operator writes it into the per-namespace routes ConfigMap (key `routes.json`), local mode writes
it to a file, and make_app reads it from QUEUEWORKER_ROUTES_FILE (docs/internals.md "Routes document"):

    {"version": 1, "routes": [{"pattern": "shop.tasks.email.*", "queue": "emails", "queueworker": "ns/name"}]}

Patterns are task names or globs (`*`); the first match wins; order is by QueueWorker name, then spec
order. A QueueWorker's routes go to its first queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from queueworker.api.spec import QueueWorker

VERSION = 1


class RoutesFileError(ValueError):
    """A routes file that exists but cannot be used; the message names the file and the problem."""


def routes_document(qws: Iterable[QueueWorker]) -> dict[str, Any]:
    """The routes of `qws`, ordered by QueueWorker name (then namespace), then spec order."""
    routes: list[dict[str, str]] = []
    for qw in sorted(qws, key=lambda q: (q.name, q.namespace)):
        owner = f"{qw.namespace}/{qw.name}"
        routes += [{"pattern": p, "queue": qw.spec.queues[0], "queueworker": owner} for p in qw.spec.routes]
    return {"version": VERSION, "routes": routes}


def _entries(doc: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(doc, dict):
        raise RoutesFileError(f"{where}: expected a JSON object with 'version' and 'routes'")
    if doc.get("version") != VERSION:
        raise RoutesFileError(f"{where}: version: expected {VERSION}, got {doc.get('version')!r}")
    routes = doc.get("routes", [])
    if not isinstance(routes, list):
        raise RoutesFileError(f"{where}: routes: expected a list")
    entries: list[tuple[str, str]] = []
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            raise RoutesFileError(f"{where}: routes[{i}]: expected an object with 'pattern' and 'queue'")
        for key in ("pattern", "queue"):
            value = route.get(key)
            if not isinstance(value, str) or not value:
                raise RoutesFileError(f"{where}: routes[{i}].{key}: expected a non-empty string")
        entries.append((route["pattern"], route["queue"]))
    return entries


def task_routes_from_file(path: str | Path) -> list[dict[str, dict[str, str]]]:
    """Celery's `task_routes` for the routes document at `path`.

    One single-entry mapping per route, in document order: Celery tries its routers in order and the
    first that matches wins, and each mapping matches its key as a task name or, with `*`, as a glob.
    A missing or empty file means no routes ([]): the ConfigMap is optional and may not exist yet.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesFileError(f"{file}: cannot read the routes file: {exc}") from exc
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RoutesFileError(f"{file}: not valid JSON: {exc}") from exc
    return [{pattern: {"queue": queue}} for pattern, queue in _entries(doc, str(file))]
