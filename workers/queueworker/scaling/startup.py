"""How long a queue's workers take to start, as measured: what the policy learns as its start delay.

The operator measures each worker pod once, from its creation to its Ready condition; local mode each
worker process, from its spawn to its readiness (the consumer started). The estimate handed to the
policy (`Observation.start_seconds`) is the median of the last few measurements, so one slow image pull
or node does not move it much, and a change of cluster or image is followed within a few starts.
Pure: the callers read the clock and the API.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

#: Measurements the estimate is the median of.
KEEP = 5
#: Keys (pod uids, process ids) remembered so that nothing is measured twice.
_SEEN_MAX = 256


class StartTimes:
    """The recent start times of one queue's workers."""

    def __init__(self, keep: int = KEEP) -> None:
        self._samples: deque[float] = deque(maxlen=keep)
        self._seen: deque[str] = deque(maxlen=_SEEN_MAX)

    def seen(self, key: str) -> bool:
        return key in self._seen

    def record(self, key: str, seconds: float) -> None:
        """One worker's start time; a key already recorded, or a negative time, is ignored."""
        if key in self._seen or seconds < 0:
            return
        self._seen.append(key)
        self._samples.append(float(seconds))

    def estimate(self) -> float | None:
        """The median of the recent start times; None before the first."""
        return statistics.median(self._samples) if self._samples else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def pod_start_seconds(pod: Mapping[str, Any]) -> float | None:
    """Seconds from a pod's creation to its Ready condition; None while it is not Ready, or when that
    condition may not be its first (a container restarted, so Ready may have been lost and regained)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if any(int(c.get("restartCount") or 0) > 0 for c in status.get("containerStatuses") or ()):
        return None
    created = _timestamp(meta.get("creationTimestamp"))
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            ready = _timestamp(cond.get("lastTransitionTime"))
            if created is None or ready is None:
                return None
            return max((ready - created).total_seconds(), 0.0)
    return None
