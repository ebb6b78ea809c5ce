"""The worker's hooks (worker/hooks.py): its bootsteps are on a make_app app's blueprints, and Celery's order
for them follows from their declared `requires`, whatever order they were added in."""

from __future__ import annotations

import random
from typing import Any

from celery import bootsteps
from celery.worker import WorkController
from celery.worker.consumer import Consumer
from celery.worker.consumer.consumer import Evloop
from queueworker.worker import hooks


def boot_order(blueprint: type[bootsteps.Blueprint], steps: list[Any]) -> list[str]:
    """The names of the steps in the order Celery starts them (what Blueprint.apply computes)."""
    bp = blueprint(steps=steps)
    bp.steps = bp.claim_steps()
    return [s.name for s in bp._finalize_steps(bp.steps)]


def requirement_names(step: Any) -> list[str]:
    return [str(r) if not isinstance(r, str) else r.replace(":", ".") for r in step.requires]


def test_make_app_adds_every_step_to_its_blueprint(monkeypatch: Any) -> None:
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", "redis://localhost:1/0")
    from queueworker import make_app

    app = make_app("hooks-test")
    assert set(hooks.WORKER_STEPS) <= set(app.steps["worker"])
    assert set(hooks.CONSUMER_STEPS) <= set(app.steps["consumer"])


def test_the_boot_order_follows_from_the_declared_requires() -> None:
    blueprints = ((WorkController.Blueprint, hooks.WORKER_STEPS), (Consumer.Blueprint, hooks.CONSUMER_STEPS))
    for blueprint, steps in blueprints:
        for seed in range(20):
            shuffled = list(steps)
            random.Random(seed).shuffle(shuffled)
            order = boot_order(blueprint, shuffled)
            for step in steps:
                for needed in requirement_names(step):
                    assert order.index(needed) < order.index(step.name), f"{step.name} after {needed}"
            is_worker = blueprint is WorkController.Blueprint
            last = "celery.worker.components.Consumer" if is_worker else Evloop.name
            assert order[-1] == last, "Celery's last step stays last"


def test_the_declared_dependencies() -> None:
    from queueworker.worker import fetch, heartbeats, metrics, poolfds

    assert requirement_names(heartbeats.Heartbeats) == [
        fetch.Identity.name,
        "celery.worker.components.Pool",
    ]
    assert requirement_names(metrics.MetricsServer) == [metrics.MetricsDir.name]
    assert requirement_names(poolfds.PoolFds) == ["celery.worker.components.Pool"]
