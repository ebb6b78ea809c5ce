"""The beat's scheduler: celery-redbeat's, made to outlive a broker failover without ever letting two beats
fire the same due time.

redbeat's own scheduler exits the beat process on the first connection error of a tick (its lock extension
and its schedule read are not retried), and a standby beat whose blocking lock wait at start meets one goes
on without a lock and exits at its first tick. On Kubernetes that is a pod restart per failover. Here:

- The lock (redbeat's key, `redbeat::lock` by default, so an older beat still excludes this one) is taken or
  extended by one script at every tick, and, where the broker has replicas (always in sentinel mode;
  worker/transport/durable.py), confirmed by `WAIT` in the same round trip: a lock only the old primary held
  is not a lock. A beat that cannot confirm fires nothing.
- Connection errors of that renewal are retried (the sentinels name the new primary at the next connection)
  while the lock is still valid: for at most QUEUEWORKER_BEAT_LOCK_TIMEOUT since it was last confirmed,
  less a pause. Past that the beat stands by, as the standby beat does: it tries to take the lock every
  `beat_max_loop_interval`, and the process never exits over the broker.
- A schedule read that fails skips the tick (nothing fired); the next tick renews the lock first.
- Each fire is fenced: after redbeat reserves the entry (its next run time, written to the primary) the lock
  is renewed and confirmed again before the task is published. The confirmation covers the reservation,
  which the primary replicated earlier in the same stream, so a beat that takes the lock over after a
  failover reads that reservation and does not fire the same due time. A fire whose fence fails is
  skipped: a failover may cost one fire, never a second one. The publish itself is a make_app publish
  (confirmed, retried through the new primary).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis
from redbeat.schedulers import REDBEAT_SENTINEL_KEY, RedBeatScheduler, get_redis

from queueworker.broker import failover
from queueworker.worker.brokerconf import SENTINEL_TRANSPORT
from queueworker.worker.settings import current
from queueworker.worker.transport.durable import Durability

log = logging.getLogger(__name__)

#: Take the lock when free, extend it when ours (the value is the holder's token); 1 when held after.
TAKE_OR_EXTEND = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
#: Seconds between two renewal attempts while the broker does not answer.
RETRY_PAUSE = 0.5
BROKER_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)


class BeatLock:
    """The one-beat lock, renewed and confirmed as the module docstring says."""

    def __init__(self, key: str, timeout: float, durability: Durability) -> None:
        self.key = key
        self.timeout = timeout
        self.durability = durability
        self.token = uuid.uuid4().hex
        self.valid_until = 0.0  # monotonic; 0: not held

    def held(self) -> bool:
        return time.monotonic() < self.valid_until

    def renew(self, client: Any) -> bool:
        """One attempt: True when this beat holds the lock for another `timeout`, confirmed."""
        sent = time.monotonic()
        confirm = self.durability.wanted(client)
        pipe = client.pipeline(transaction=False)
        pipe.eval(TAKE_OR_EXTEND, 1, self.key, self.token, int(self.timeout * 1000))
        if confirm:
            pipe.wait(self.durability.min_replicas, int(self.durability.timeout * 1000))
        replies = pipe.execute()
        if int(replies[0]) != 1:
            if self.valid_until:
                log.warning(
                    "beat: lock lost (it expired, or a failover lost it): firing nothing until retaken"
                )
            self.valid_until = 0.0
            return False
        if confirm and int(replies[-1]) < self.durability.min_replicas:
            log.warning("beat: lock renewal not confirmed by a replica: firing nothing this tick")
            return False
        if not self.valid_until:
            log.info("beat: Acquired lock")
        self.valid_until = sent + self.timeout
        return True

    def renew_within_bound(self, client: Any) -> bool:
        """`renew`, its connection errors retried while the lock held so far is valid (once when none is)."""
        while True:
            try:
                return self.renew(client)
            except BROKER_ERRORS as exc:
                if time.monotonic() + RETRY_PAUSE >= self.valid_until:
                    if self.valid_until:
                        log.warning("beat: broker unreachable (%s): standing by", type(exc).__name__)
                    self.valid_until = 0.0
                    return False
                log.warning("beat: lock renewal failed (%s); trying again", type(exc).__name__)
                time.sleep(RETRY_PAUSE)

    def release(self, client: Any) -> None:
        if self.valid_until:
            client.eval(RELEASE, 1, self.key, self.token)
            self.valid_until = 0.0


class Scheduler(RedBeatScheduler):
    """redbeat's scheduler with the lock above (see the module docstring)."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        settings = current()
        durability = Durability(
            min_replicas=settings.publish_min_replicas,
            timeout=settings.publish_wait_timeout,
            always=app.conf.broker_transport == SENTINEL_TRANSPORT,
            aof=False,
        )
        key: str | None = getattr(self, "lock_key", None)
        self.qw_lock = BeatLock(key, float(self.lock_timeout), durability) if key else None
        self.lock_key = None  # redbeat's beat_init receiver would wait for its own lock: ticks take ours

    def client(self) -> Any:
        """redbeat's client without its retrying wrapper (retries here are bounded by the lock). In
        sentinel mode its connections take a failover's refusals (NOREPLICAS...) for a lost connection
        (broker/failover.py), for redbeat's own writes too."""
        wrapped = get_redis(self.app)
        if failover.adopt(getattr(self.app, REDBEAT_SENTINEL_KEY, None)):
            wrapped = get_redis(self.app)
        return getattr(wrapped, "wrapped_connection", wrapped)

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        lock = self.qw_lock
        if lock is not None and not lock.renew_within_bound(self.client()):
            return float(self.max_interval)
        try:
            entries = list(self.schedule.values())
        except BROKER_ERRORS as exc:
            log.warning("beat: schedule not read (%s): nothing fired this tick", type(exc).__name__)
            return RETRY_PAUSE
        remaining = []
        for entry in entries:
            if lock is not None and not lock.held():
                break  # the lock went while this tick fired: the next tick renews it first
            next_time = self.maybe_due(entry, **self._maybe_due_kwargs)
            if next_time:
                remaining.append(next_time)
        return float(min([*remaining, self.max_interval]))

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        """Reserve, fence (the lock confirmed again), then publish; a failed fence skips this fire."""
        if advance:
            entry = self.reserve(entry)
        lock = self.qw_lock
        if lock is not None:
            try:
                fenced = lock.renew(self.client())
            except BROKER_ERRORS:
                fenced = False
            if not fenced:
                log.warning("beat: %s not fired: the lock was not confirmed after reserving it", entry.name)
                return None
        return super().apply_async(entry, producer, advance=False, **kwargs)

    def close(self) -> None:
        if self.qw_lock is not None and self.qw_lock.held():
            log.info("beat: Releasing lock")
            try:
                self.qw_lock.release(self.client())
            except BROKER_ERRORS as exc:
                log.warning("beat: lock not released (%s); it expires by itself", type(exc).__name__)
        super().close()
