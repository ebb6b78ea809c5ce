"""The beat on a Sentinel-managed broker loses its primary (SIGKILL, then frozen past the failover): it does
not exit, it finds the new primary through the sentinels and keeps firing, and no due time fires twice,
with a standby beat running beside it the whole time. Fires are counted from the messages the beats
publish (on whichever node is the primary when they are read)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from queueworker.beat.schedules import BeatEntry, sync_schedules
from queueworker.broker.keys import PUBLISHED_HEADER

from tests.redis.beat.test_beat import start_beat
from tests.support.sentinel import SentinelCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
EVERY = 1.0
QUEUE = "beat_sentinel"


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SentinelCluster]:
    with SentinelCluster(replicas=2, workdir=tmp_path / "cluster") as started:
        for key, value in started.env.items():
            monkeypatch.setenv(key, value)  # start_beat passes this environment on
        yield started


def fires(cluster: SentinelCluster) -> list[float]:
    for _ in range(50):
        with contextlib.suppress(redis.RedisError, RuntimeError):
            raws = cluster.primary().client().lrange(QUEUE, 0, -1)
            return sorted(float(json.loads(raw)["headers"][PUBLISHED_HEADER]) for raw in raws)
        time.sleep(0.2)
    raise RuntimeError("no primary to read the fires from")


def more_fires(cluster: SentinelCluster, count: int) -> Callable[[], bool]:
    return lambda: len(fires(cluster)) >= count


def alive(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> bool:
    return all(proc.poll() is None for proc, _ in procs)


@pytest.mark.parametrize("fault", ["kill", "stop"])
def test_the_beat_survives_a_failover_and_fires_each_due_time_once(
    cluster: SentinelCluster, tmp_path: Path, fault: str
) -> None:
    entry = BeatEntry(
        name="qw/default/f/tick", task="reltasks.count", schedule=EVERY, args=("t",), queue=QUEUE
    )
    sync_schedules(cluster.url, "qw/default/", [entry])
    workdir = tmp_path / "beats"
    workdir.mkdir()
    procs = [start_beat(cluster.url, workdir) for _ in range(2)]
    try:
        wait_for(lambda: len(fires(cluster)) >= 3, 40, message="the first fires")
        for round_ in range(2):
            old = cluster.primary()
            before = len(fires(cluster))
            if fault == "kill":
                old.stop(kill=True)
                cluster.wait_failover(old.port)
                old.start()
            else:
                assert old.proc is not None
                old.proc.send_signal(signal.SIGSTOP)
                try:
                    cluster.wait_failover(old.port)
                    time.sleep(1.0)
                finally:
                    old.proc.send_signal(signal.SIGCONT)
            wait_for(more_fires(cluster, before + 5), 60, message=f"fires after failover {round_}")
            assert alive(procs), [log.read_text()[-3000:] for _, log in procs]
            cluster.wait_replicas(cluster.primary(), 2, timeout=60)
            cluster.wait_sentinels_agree(timeout=60)
        fired = fires(cluster)
        gaps = [b - a for a, b in itertools.pairwise(fired)]
        doubled = sum(1 for g in gaps if g < EVERY / 2)
        print(
            f"\n[reliability] beat, primary {fault} x2: fires={len(fired)}, fired twice for one due time: "
            f"{doubled}, longest gap {max(gaps):.1f}s; beats alive: {alive(procs)}"
        )
        assert alive(procs), "no beat exited"
        assert doubled == 0, gaps
    finally:
        for proc, _ in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
