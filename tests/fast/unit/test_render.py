"""`qw render`: the example manifests become valid objects, and bad input exits 2 with one
`FILE: field.path: message` line per problem and no traceback (run as the real `qw` command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from queueworker.api.manifests import load_manifests
from queueworker.builders import render
from queueworker.settings import Settings

from tests.support.validate import validate_object

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
QW = Path(sys.executable).with_name("qw")
VERSIONS = ("1.28.0", "1.34.0")


def qw_render(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUEUEWORKER_")}
    return subprocess.run(
        [str(QW), "render", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=REPO,
        timeout=60,
        check=False,
    )


def example_objects() -> list[dict[str, Any]]:
    loaded = load_manifests(EXAMPLES, recursive=True)
    assert loaded and all(item.qw is not None and not item.errors for item in loaded), loaded
    return render([item.qw for item in loaded if item.qw is not None], Settings())


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


QW_DOC = """\
apiVersion: queueworker.dev/v1alpha1
kind: QueueWorker
metadata:
  name: {name}
{namespace}spec:
  app: tasks:app
  queues: [{queue}]
"""


def manifest(name: str, queue: str = "q", namespace: str | None = None, extra: str = "") -> str:
    ns = f"  namespace: {namespace}\n" if namespace else ""
    return QW_DOC.format(name=name, namespace=ns, queue=queue) + extra


def test_examples_are_the_seed_queues() -> None:
    objects = example_objects()
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert {"task-a-worker", "task-b-worker", "default-worker", "queueworker-beat"} <= set(deployments)
    args = {name: d["spec"]["template"]["spec"]["containers"][0]["args"] for name, d in deployments.items()}
    assert args["task-a-worker"][:5] == ["-A", "tasks:app", "worker", "-Q", "for_task_A"]
    assert args["task-b-worker"][:5] == ["-A", "tasks:app", "worker", "-Q", "for_task_B"]
    assert args["default-worker"][:5] == ["-A", "tasks:app", "worker", "-Q", "celery"]
    assert deployments["task-a-worker"]["spec"]["replicas"] == 0  # builtin, minReplicas 0
    assert deployments["default-worker"]["spec"]["replicas"] == 1  # off, replicas 1
    routes = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["routes.json"]
    assert '"tasks.taskA"' in routes and '"for_task_B"' in routes
    kinds = {o["kind"] for o in objects}
    assert {"ScaledObject", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize("version", VERSIONS)
def test_every_example_object_validates_strictly(version: str) -> None:
    for obj in example_objects():
        validate_object(obj, version)


def test_qw_render_prints_exactly_the_built_objects_stably() -> None:
    first = qw_render("-f", "examples/", "-R")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert list(yaml.safe_load_all(first.stdout)) == example_objects()
    again = qw_render("-f", "examples", "--recursive")
    assert again.stdout == first.stdout
    assert "redis://" not in first.stdout  # the broker URL only ever comes from the Secret
    assert "&id" not in first.stdout and "*id" not in first.stdout  # no YAML anchors


def test_a_directory_is_read_without_its_subdirectories_unless_recursive() -> None:
    top = [d for d in yaml.safe_load_all(qw_render("-f", "examples/").stdout) if d["kind"] == "Deployment"]
    names = {d["metadata"]["name"] for d in top}
    assert "task-a-worker" in names and not any("hpa" in n or "keda" in n for n in names), names
    tree = yaml.safe_load_all(qw_render("-f", "examples/", "-R").stdout)
    every = [d for d in tree if d["kind"] == "Deployment"]
    assert len(every) > len(top)


def test_qw_render_uses_the_operator_settings() -> None:
    result = qw_render(
        "-f",
        "examples/task-a.yaml",
        env={"QUEUEWORKER_DEFAULT_IMAGE": "registry.example/w:2", "QUEUEWORKER_BROKER_SECRET": "my-broker"},
    )
    assert result.returncode == 0, result.stderr
    deploy = next(o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/w:2"
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "my-broker"


def test_namespace_flag_applies_to_manifests_without_one(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", manifest("a", "qa") + "---\n" + manifest("b", "qb", namespace="pinned"))
    result = qw_render("-f", str(tmp_path), "-n", "team-x")
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    by_owner = {(o["kind"], o["metadata"]["name"]): o["metadata"]["namespace"] for o in objects}
    assert by_owner[("Deployment", "a-worker")] == "team-x"
    assert by_owner[("Deployment", "b-worker")] == "pinned"
    # one routes ConfigMap per namespace
    assert sorted(o["metadata"]["namespace"] for o in objects if o["kind"] == "ConfigMap") == [
        "pinned",
        "team-x",
    ]
    for obj in objects:
        validate_object(obj, "1.34.0")


def assert_fails(result: subprocess.CompletedProcess[str], *expected: str) -> list[str]:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    for needle in expected:
        assert any(needle in line for line in lines), (needle, lines)
    return lines


def test_invalid_manifest_lists_every_error_with_its_path(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        manifest("bad", extra="  concurency: 3\n  autoscaling: {minReplicas: 5, maxReplicas: 2}\n"),
    )
    lines = assert_fails(qw_render("-f", str(bad)), "spec.concurency", "spec.autoscaling.minReplicas")
    assert all(line.startswith(f"{bad}: ") for line in lines)


def test_one_bad_file_in_a_directory_fails_the_whole_render(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", manifest("good", "g"))
    write(tmp_path, "bad.yaml", manifest("bad", "b", extra="  pool: fork\n"))
    assert_fails(qw_render("-f", str(tmp_path)), "bad.yaml: spec.pool")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [\n", "invalid YAML"),
        ("just a string\n", ""),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "kind"),
        ("\x00\x01", ""),
    ],
)
def test_unusable_files(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "x.yaml", text)
    lines = assert_fails(qw_render("-f", str(path)), expected)
    assert all(line.startswith(str(path)) for line in lines)


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    assert_fails(qw_render("-f", str(tmp_path / "absent.yaml")), "absent.yaml", "no such file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_fails(qw_render("-f", str(empty)), "no QueueWorker manifests found")


def test_duplicate_queueworker_across_paths(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yaml", manifest("same", "q1"))
    two = write(tmp_path, "two.yaml", manifest("same", "q2"))
    assert_fails(
        qw_render("-f", str(one), "-f", str(two)), "metadata.name: duplicate QueueWorker default/same"
    )


def test_hpa_with_a_queue_name_no_selector_can_hold(tmp_path: Path) -> None:
    path = write(tmp_path, "h.yaml", manifest("h", "jobs:high", extra="  autoscaling: {mode: hpa}\n"))
    assert_fails(qw_render("-f", str(path)), "spec.queues[0]", "autoscaling.mode keda or builtin")


def test_bad_settings_and_flags() -> None:
    lines = assert_fails(
        qw_render("-f", "examples/", env={"QUEUEWORKER_AUTOSCALE_INTERVAL": "soon"}),
        "QUEUEWORKER_AUTOSCALE_INTERVAL",
    )
    assert lines[0].startswith("environment: ")
    assert_fails(qw_render("-f", "examples/", "-n", "Not_A_Namespace"), "-n/--namespace")
    usage = qw_render()  # -f is required: argparse's usage message, status 2
    assert usage.returncode == 2 and "Traceback" not in usage.stderr and "-f" in usage.stderr


def test_rendered_stream_passes_yamllint() -> None:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    result = qw_render("-f", "examples/", "-R")
    assert result.returncode == 0, result.stderr
    config = YamlLintConfig("{extends: default, rules: {line-length: {max: 200}}}")
    problems = [str(p) for p in linter.run(result.stdout, config)]
    assert problems == []
