"""The table local mode shows: one row per QueueWorker. `qw up` redraws it live and publishes the rows to
Redis each tick (hash VIEW_KEY, with a TTL), so `qw status` prints the same table from any terminal.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis
from rich.table import Table
from rich.text import Text

#: Hash written by `qw up` each tick: field = QueueWorker name, value = JSON Row; plus META_FIELD.
VIEW_KEY = "queueworker:local:view"
META_FIELD = "_meta"


@dataclass(frozen=True)
class ScaleEvent:
    at: float  # Unix time
    from_replicas: int
    to: int
    reason: str


@dataclass(frozen=True)
class Row:
    name: str
    queues: tuple[str, ...]
    mode: str
    backlog: int | None
    reserved: int | None
    oldest_wait: float | None
    target_wait: float
    running: int | None
    desired: int | None
    busy_slots: int | None
    total_slots: int | None
    throughput: float | None
    completed: int | None
    decision: str
    last_scale: ScaleEvent | None = None
    stopping: int = 0
    crashed: int = 0
    restarts: int = 0
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_down_delay: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        data = dict(data)
        data["queues"] = tuple(data.get("queues", ()))
        if data.get("last_scale"):
            data["last_scale"] = ScaleEvent(**data["last_scale"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def publish(client: redis.Redis, rows: list[Row], meta: dict[str, Any], ttl: float) -> None:
    mapping: dict[Any, Any] = {r.name: json.dumps(r.to_json()) for r in rows}
    mapping[META_FIELD] = json.dumps({**meta, "updated": time.time()})
    pipe = client.pipeline()
    pipe.delete(VIEW_KEY)
    pipe.hset(VIEW_KEY, mapping=mapping)
    pipe.expire(VIEW_KEY, max(1, int(ttl)))
    pipe.execute()


def read(client: redis.Redis) -> tuple[list[Row], dict[str, Any] | None]:
    raw = client.hgetall(VIEW_KEY)
    rows, meta = [], None
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name == META_FIELD:
            meta = json.loads(value)
        else:
            rows.append(Row.from_json(json.loads(value)))
    return sorted(rows, key=lambda r: r.name), meta


def _num(value: float | None, fmt: str = "{:d}") -> str:
    return "-" if value is None else fmt.format(value)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def wait_cell(row: Row) -> Text:
    if row.oldest_wait is None:
        return Text(f"- / {row.target_wait:g}s", style="dim")
    style = "bold red" if row.oldest_wait > row.target_wait else "green"
    return Text(f"{row.oldest_wait:.1f}s / {row.target_wait:g}s", style=style)


def workers_cell(row: Row) -> Text:
    text = Text(f"{_num(row.running)}/{_num(row.desired)}")
    if row.running is not None and row.desired is not None and row.running != row.desired:
        text.stylize("yellow")
    notes = []
    if row.stopping:
        notes.append(f"{row.stopping} stopping")
    if row.crashed:
        notes.append(f"{row.crashed} crashed")
    if row.restarts:
        notes.append(f"{row.restarts} restarts")
    if notes:
        text.append(" (" + ", ".join(notes) + ")", style="red" if row.crashed else "dim")
    return text


def decision_cell(row: Row, now: float) -> Text:
    if row.last_scale is None:
        return Text(row.decision or "-", style="dim")
    ev = row.last_scale
    arrow = "↑" if ev.to > ev.from_replicas else "↓"
    text = Text(f"{arrow} {ev.from_replicas}→{ev.to} {_ago(now - ev.at)}: ", style="bold")
    text.append(ev.reason)
    return text


def table(rows: list[Row], title: str | None = None, now: float | None = None) -> Table:
    now = time.time() if now is None else now
    t = Table(title=title, title_justify="left", expand=False)
    for col, justify in (
        ("QueueWorker", "left"),
        ("queues", "left"),
        ("backlog", "right"),
        ("oldest wait / target", "right"),
        ("workers run/want", "left"),
        ("busy slots", "right"),
        ("tasks/s", "right"),
        ("last scale decision", "left"),
    ):
        t.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        backlog = _num(r.backlog) + (f" (+{r.reserved} reserved)" if r.reserved else "")
        mode = "" if r.mode == "builtin" else f" [{r.mode}]"
        t.add_row(
            r.name + mode,
            ",".join(r.queues),
            backlog,
            wait_cell(r),
            workers_cell(r),
            f"{_num(r.busy_slots)}/{_num(r.total_slots)}",
            _num(r.throughput, "{:.1f}"),
            decision_cell(r, now),
        )
    return t
