"""What one user asked of the API server in a time window, from the local cluster's audit log
(hack/cluster writes every request's metadata to <state>/audit.log; lease renewals are left out)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

READS = frozenset({"get", "list", "watch"})


@dataclass
class Requests:
    """One user's requests in a window: counts per verb and per `verb resource`."""

    seconds: float
    verbs: Counter[str] = field(default_factory=Counter)
    by_resource: Counter[str] = field(default_factory=Counter)

    @property
    def reads(self) -> int:
        return sum(n for verb, n in self.verbs.items() if verb in READS)

    @property
    def writes(self) -> int:
        return sum(n for verb, n in self.verbs.items() if verb not in READS)

    def per_minute(self, count: int) -> float:
        return round(60.0 * count / self.seconds, 1) if self.seconds > 0 else 0.0


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def requests(log: Path, user: str, start: float, end: float, offset: int = 0) -> Requests:
    """`user`'s requests received in [start, end) (epoch seconds), read from byte `offset` of `log`.

    Each request counts once (by audit ID), whichever stages of it the log holds."""
    seen: set[str] = set()
    found = Requests(seconds=end - start)
    marker = f'"{user}"'.encode()
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            if marker not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line the server is still writing
            if (event.get("user") or {}).get("username") != user or event.get("auditID") in seen:
                continue
            if not start <= when(event["requestReceivedTimestamp"]) < end:
                continue
            seen.add(event["auditID"])
            ref = event.get("objectRef") or {}
            found.verbs[event["verb"]] += 1
            found.by_resource[f"{event['verb']} {ref.get('resource', event.get('requestURI', '?'))}"] += 1
    return found
