"""The fault matrix (faultmatrix.py) in the suite: every broker and worker fault once under a concurrent
load with a prefork pool, then the broker faults that make the consumer reconnect with a threads and a solo
pool. Lost must be 0 every round; run-twice is printed and bounded by what the workers can hold (prefetch =
concurrency: each worker holds at most its concurrency), once per connection-losing event; every worker not
killed on purpose is still running and never logged "Unrecoverable error". bench/faults.py runs 10+ rounds
each with a 60 s SIGSTOP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultmatrix import FAULTS, Matrix, Round

#: SIGSTOP length in the suite (the benchmark freezes Redis for 60 s).
STOP_SECONDS = 12.0


def check(matrix: Matrix, result: Round) -> None:
    capacity = len(matrix.workers) * matrix.concurrency
    events = 5 if result.fault == "connection-cut" else 1
    assert result.all_ran and result.tally.lost == 0, f"{result.line()}\n{matrix.logs()}"
    assert result.workers_ok, f"{result.line()}\n{matrix.logs()}"
    assert result.tally.twice <= capacity * events, result.line()
    if result.fault == "worker-sigterm":
        assert "SIGTERM exit code 0" in result.notes, result.line()


@pytest.fixture
def prefork(tmp_path: Path) -> Iterator[Matrix]:
    matrix = Matrix(tmp_path, pool="prefork", stop_seconds=STOP_SECONDS).start()
    yield matrix
    matrix.stop()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_fault_in_turn_loses_nothing_and_the_workers_live_on(prefork: Matrix) -> None:
    for fault in FAULTS:
        check(prefork, prefork.run_round(fault, 1))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_other_pools_survive_reconnects_and_lose_nothing(pool: str, tmp_path: Path) -> None:
    matrix = Matrix(
        tmp_path, pool=pool, concurrency=2 if pool == "threads" else 1, stop_seconds=STOP_SECONDS
    ).start()
    try:
        for fault in ("connection-cut", "redis-kill-aof-always", "redis-sigstop"):
            check(matrix, matrix.run_round(fault, 1))
    finally:
        matrix.stop()
