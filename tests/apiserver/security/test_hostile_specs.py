"""Hostile QueueWorker specs through `qw render` (the module function on generated input, and the real
command on the worst texts) and through the real API server and operator: never a crash, a hang or a
traceback; invalid input is an error naming a field (or the YAML problem), refused by the API server
or reported by the operator, and valid input renders.

The spec model's own properties are in tests/fast/unit/test_spec_fuzz.py; its strategies are reused here."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from queueworker.api.spec import SpecError, parse_manifest
from queueworker.cli import main as qw_main

from tests.apiserver.security.hostile_yaml import HOSTILE_TEXTS, dump, manifest, nested_list
from tests.fast.unit.test_spec_fuzz import json_values, near_valid, specs
from tests.support.celery_worker import REPO, WORKERS
from tests.support.control_plane import Server
from tests.support.kubeapi import DEPLOYMENTS, QW, Api
from tests.support.operator_harness import environment, operator_settings, running_operator
from tests.support.redis_server import RedisServer

RENDERED_KINDS = {"Deployment", "PodDisruptionBudget", "ConfigMap", "ScaledObject", "HorizontalPodAutoscaler"}
FIELD = r"[A-Za-z0-9_.\-\[\]/]+"
manifest_docs = st.one_of(
    near_valid.map(lambda extra: manifest({"app": "shop.tasks", "queues": ["emails"], **extra})),
    specs.map(manifest),
    st.dictionaries(
        st.sampled_from(["apiVersion", "kind", "metadata", "spec", "x"]), json_values, max_size=5
    ),
    json_values,
)


def render_text(path: Path, text: str | bytes) -> tuple[int, str, str]:
    """`qw render -f path` in this process: (exit status, stdout, stderr)."""
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = qw_main(["render", "-f", str(path)])
    return status, out.getvalue(), err.getvalue()


def check_outcome(path: Path, status: int, out: str, err: str, doc: Any = None) -> None:
    """Status 0 with rendered objects, or status 2 with nothing on stdout and one `FILE: ...` line per
    problem; for a parsed document, each field the spec model names has its own `FILE: <field>: ` line."""
    assert status in (0, 2), (status, err)
    if status == 0:
        kinds = {obj["kind"] for obj in yaml.safe_load_all(out) if obj}
        assert kinds and kinds <= RENDERED_KINDS, kinds
        return
    assert out == "", "nothing on stdout when the input is invalid"
    lines = err.rstrip("\n").split("\n")  # not splitlines(): field names may hold \x1c-\x1e, \x85...
    assert lines and all(text.startswith(f"{path}") for text in lines), lines
    assert not any("Traceback" in text for text in lines)
    if doc is None:
        return
    try:
        parse_manifest(doc)
        paths: list[str] = []
    except SpecError as exc:
        paths = [e.path for e in exc.errors]
    if isinstance(doc, dict) and "kind" in doc and doc["kind"] != "QueueWorker":
        paths = ["kind"]  # another kind of object: that is the one error (api/manifests.py)
    if paths:
        for field in paths:  # (an empty key's path is empty: "FILE: unknown field ...")
            named = f"{re.escape(field)}: " if field else ""
            assert any(
                re.match(rf"^{re.escape(str(path))}( \[doc \d+\])?: {named}\S", text) for text in lines
            ), (field, lines)
    else:  # the model accepts it, so what failed is `qw render`'s own check, which names a field too
        assert all(re.match(rf"^{re.escape(str(path))}: {FIELD}: \S", text) for text in lines), lines


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=manifest_docs)
def test_qw_render_on_generated_manifests(doc: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("render") / "qw.yaml"
    status, out, err = render_text(path, dump(doc))
    check_outcome(path, status, out, err, doc)
    if status == 0:
        parse_manifest(doc)  # the model accepts what renders


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=300) | st.binary(max_size=300))
@example(text="a: &a [*a]\n")
@example(text="{" * 2000)
def test_qw_render_on_arbitrary_text(text: str | bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("text") / "qw.yaml"
    check_outcome(path, *render_text(path, text))


@pytest.mark.parametrize("what", sorted(HOSTILE_TEXTS))
def test_hostile_texts_through_the_qw_command(what: str, tmp_path: Path) -> None:
    """The real `qw render` command: it ends (bounded wait), with status 0 or 2, and no traceback."""
    path = tmp_path / "qw.yaml"
    text = HOSTILE_TEXTS[what]
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'operator'}:{WORKERS}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "queueworker.cli", "render", "-f", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(f"\n[security] qw render {what}: exit {done.returncode}: {done.stderr.splitlines()[:1]}")
    check_outcome(path, done.returncode, done.stdout, done.stderr)
    if what in ("alias bomb", "recursive alias", "nested 5000 deep", "python tag", "binary"):
        assert done.returncode == 2


# -- the operator's handler path -------------------------------------------------------------------


class OperatorInThread:
    """The real operator on the session's API server, running in a loop of its own, so a synchronous
    hypothesis test can create QueueWorkers and watch their status."""

    def __init__(self, kubeconfig: Path, namespace: str, redis_url: str) -> None:
        self.kubeconfig, self.namespace, self.redis_url = kubeconfig, namespace, redis_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.operator: asyncio.Task[None] | None = None
        self.done: Any = None

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serve(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        env = operator_settings(self.redis_url, KUBECONFIG=str(self.kubeconfig))
        with environment(env):
            async with running_operator([self.namespace]) as task:
                self.operator = task
                ready.set_result(None)
                await stop.wait()

    def __enter__(self) -> OperatorInThread:
        self.thread.start()

        async def start() -> None:
            ready: asyncio.Future[None] = self.loop.create_future()
            self.stop = asyncio.Event()
            self.done = asyncio.ensure_future(self._serve(ready, self.stop))
            await asyncio.wait_for(ready, 60)

        self.call(start(), timeout=90)
        return self

    def __exit__(self, *exc: object) -> None:
        async def finish() -> None:
            self.stop.set()
            await asyncio.wait_for(self.done, 30)

        with contextlib.suppress(Exception):
            self.call(finish(), timeout=40)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def operator_thread(kube_server: Server) -> Iterator[tuple[OperatorInThread, Api]]:
    server = RedisServer().start()
    namespace = kube_server.namespace("hostile-specs")
    # The deepest example (args nested 900 levels) comes back from the server as JSON: decoding it (and
    # hypothesis printing it) takes more frames than Python's default 1000 under pytest's own.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        with OperatorInThread(kube_server.kubeconfig, namespace, server.url) as runner:
            yield runner, kube_server.api
    finally:
        sys.setrecursionlimit(limit)
        server.stop()
        kube_server.drop_namespace(namespace)


COUNTER = itertools.count()


def ready_condition(kube: Api, namespace: str, name: str) -> dict[str, Any] | None:
    """The QueueWorker's Ready condition once the operator has handled it, else None."""
    body = kube.read(QW, namespace, name) or {}
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return dict(cond)
    return None


def submit_and_wait(runner: OperatorInThread, kube: Api, spec: Any) -> tuple[dict[str, Any] | None, Any]:
    """(Ready condition, worker Deployment) once the operator reported; (None, None) when the API server
    refused the object."""
    namespace, name = runner.namespace, f"hostile{next(COUNTER)}"
    obj = manifest(spec, name=name, namespace=namespace)
    code, _ = kube.request("POST", QW.path(namespace), obj)
    if code >= 400:
        return None, None
    for _ in range(400):
        cond = ready_condition(kube, namespace, name)
        if cond is not None:
            break
        runner.call(asyncio.sleep(0.05))
    else:
        raise AssertionError(f"the operator never reported on {spec!r}")
    return cond, kube.read(DEPLOYMENTS, namespace, f"{name}-worker")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    spec=near_valid.map(lambda extra: {"app": "shop.tasks", "queues": ["emails"], **extra})
    | specs
    | json_values
)
@example(
    spec={
        "app": "t",
        "queues": ["q"],
        "schedules": [{"name": "s", "task": "t", "every": "30s", "args": nested_list(900)}],
    }
)
def test_operator_reports_invalid_specs_and_keeps_running(
    spec: Any, operator_thread: tuple[OperatorInThread, Api]
) -> None:
    runner, kube = operator_thread
    cond, deployment = submit_and_wait(runner, kube, spec)
    assert runner.operator is not None and not runner.operator.done(), "the operator is still running"
    try:
        parse_manifest(manifest(spec))
        errors: list[str] = []
    except SpecError as exc:
        errors = [f"{e.path}: {e.message}" for e in exc.errors]
    if cond is None:  # the API server refused it: so does the model (tests/apiserver: the same fields)
        assert errors, f"the API server refuses a spec the model accepts: {spec!r}"
    elif errors:
        assert cond["status"] == "False" and cond["reason"] == "InvalidSpec", cond
        # every field named, in the condition's 1024 characters (status.py caps a message there)
        assert cond["message"] == ("invalid spec: " + "; ".join(errors))[:1024], cond["message"]
        assert deployment is None, "nothing is created for an invalid spec"
    else:
        assert cond["reason"] != "InvalidSpec", cond
        assert deployment is not None
