"""The beat leader killed (SIGKILL, no lock release): the standby beat takes the lock once it expires and
keeps firing; no due time fires twice. Fires are counted from the messages beat publishes."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from queueworker.beat.schedules import BeatEntry, sync_schedules
from queueworker.broker.keys import PUBLISHED_HEADER

from tests.redis.beat.test_beat import start_beat
from tests.support.waiting import wait_for

LOCK_TIMEOUT = 6.0  # what start_beat configures (QUEUEWORKER_BEAT_LOCK_TIMEOUT)
LOOP = min(5.0, LOCK_TIMEOUT / 3)  # make_app's beat_max_loop_interval for that lock timeout
EVERY = 1.0
QUEUE = "beat_failover"


def stamps(client: redis.Redis) -> list[float]:
    return sorted(float(json.loads(raw)["headers"][PUBLISHED_HEADER]) for raw in client.lrange(QUEUE, 0, -1))


@pytest.mark.slow
def test_beat_leader_killed_the_standby_takes_over_without_double_fire(
    redis_url: str, redis_client: redis.Redis
) -> None:
    sync_schedules(
        redis_url,
        "qw/default/",
        [
            BeatEntry(
                name="qw/default/f/tick", task="reltasks.count", schedule=EVERY, args=("tick",), queue=QUEUE
            )
        ],
    )
    workdir = Path(tempfile.mkdtemp(prefix="qw-beat-failover-"))
    procs: list[tuple[subprocess.Popen[bytes], Path]] = [start_beat(redis_url, workdir) for _ in range(2)]
    try:
        wait_for(lambda: redis_client.llen(QUEUE) >= 3, 30, message="the leader's first fires")
        leaders = [(p, log) for p, log in procs if "beat: Acquired lock" in log.read_text()]
        assert len(leaders) == 1, "exactly one beat holds the lock"
        leader, _ = leaders[0]
        standby, standby_log = next((p, log) for p, log in procs if p is not leader)
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=10)
        killed_at, fires_at_kill = time.time(), redis_client.llen(QUEUE)
        # bounded wait: the lock expires LOCK_TIMEOUT after its last extension; the standby retries each loop
        wait_for(
            lambda: "beat: Acquired lock" in standby_log.read_text(),
            LOCK_TIMEOUT + LOOP + 10,
            message="the standby to take the lock",
        )
        wait_for(lambda: redis_client.llen(QUEUE) >= fires_at_kill + 4, 30, message="fires after takeover")
        assert standby.poll() is None
        fired = stamps(redis_client)
        after = [s for s in fired if s > killed_at]
        gap = after[0] - killed_at
        gaps = [b - a for a, b in itertools.pairwise(fired)]
        doubled = sum(1 for g in gaps if g < EVERY / 2)
        print(
            f"\n[reliability] beat leader SIGKILL: fires={len(fired)} ({fires_at_kill} before the kill), "
            f"first fire by the standby {gap:.1f}s after the kill (lock timeout {LOCK_TIMEOUT:g}s), "
            f"fired twice for one due time: {doubled}; gaps {[round(g, 2) for g in gaps]}"
        )
        assert doubled == 0, gaps
        assert max(gaps) <= LOCK_TIMEOUT + LOOP + EVERY + 5, gaps  # a takeover, not a stall
    finally:
        for proc, _ in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
