"""A smaller `python -m bench.failover`: one round of the primary killed, frozen past the failover, and
demoted while running with every client connection cut (celery#6348), under a concurrent producer and two
real workers on a Sentinel-managed Redis. No acknowledged publish is lost, no worker exits, and a task runs
twice at most as often as messages were held by the workers (2 workers x 2 slots, prefetch 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.failover import Failover

pytestmark = pytest.mark.slow
HELD_AT_MOST = 4


def test_failovers_lose_no_acknowledged_publish_and_stop_no_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("QUEUEWORKER_BROKER_URL", "QUEUEWORKER_SENTINEL_MASTER", "QUEUEWORKER_SENTINEL_PASSWORD"):
        monkeypatch.setenv(name, "")  # the harness sets the cluster's; restored afterwards
    harness = Failover(tmp_path, rate=25.0)
    try:
        harness.start()
        for fault in ("kill", "stop", "cut"):
            result = harness.run_round(fault, 1)
            assert result.acknowledged, f"{fault}: the producer got acknowledgements"
            assert result.lost == 0, f"{fault}: {result.line()}"
            assert result.worker_exits == 0, f"{fault}: {result.line()}"
            assert result.twice <= HELD_AT_MOST, f"{fault}: {result.line()}"
    finally:
        harness.stop()
