"""The API server and `qw render` give every manifest of tests/cases and examples/ the same verdict:
accepted by both, or refused by both naming the same fields. kubectl sends each file as a user's
`kubectl apply --validate=strict` would (server-side dry run), so YAML is read by Go's parser too."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from queueworker.manifests import load_manifests

from tests.apiserver.conftest import CHART_CRDS, ROOT, Server
from tests.support import cel

CASES = cel.load_cases()
NOT_CHECKED = "some validation rules were not checked because the object was invalid"
OUR_VERSION = "queueworker.dev/v1alpha1"


def server_paths(stderr: str) -> list[str]:
    """The field paths an API server refusal names, in the spec model's dotted style."""
    paths = re.findall(r"(?:^\* |is invalid: )(\.?[A-Za-z][\w.\[\]-]*): ", stderr, re.MULTILINE)
    paths += re.findall(r'unknown field "([^"]+)"', stderr)
    paths += ["metadata.namespace" for _ in re.findall(r'namespaces "[^"]*" not found', stderr)]
    paths += ["metadata.name" for _ in re.findall(r"resource name may not be empty", stderr)]
    for _kind, version in re.findall(r'no matches for kind "([^"]*)" in version "([^"]*)"', stderr):
        paths.append("kind" if version == OUR_VERSION else "apiVersion")
    return [p.lstrip(".") for p in paths]


def dotted(path: str) -> str:
    """`spec.nodeSelector[disk]` (the model's map-key style) -> `spec.nodeSelector.disk` (the server's)."""
    return re.sub(r"\[([^\]0-9][^\]]*)\]", r".\1", path)


def related(a: str, b: str) -> bool:
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def model_paths(path: Path) -> list[str]:
    (loaded,) = load_manifests(path)
    return [dotted(e.path) for e in loaded.errors]


@pytest.fixture(scope="module")
def namespaces(crd_server: Server) -> Server:
    """The namespaces valid cases name exist, so only the manifest itself is judged."""
    for case in CASES:
        meta = case.obj.get("metadata") if isinstance(case.obj, dict) else None
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        if case.valid and isinstance(namespace, str):
            crd_server.kubectl("create", "namespace", namespace)
    return crd_server


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_api_server_and_qw_render_agree(namespaces: Server, case: cel.Case) -> None:
    result = namespaces.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", str(case.path))
    model = model_paths(case.path)
    if case.valid:
        assert result.returncode == 0, f"the API server refuses a case qw render accepts:\n{result.stderr}"
        assert model == [], f"qw render refuses a case the API server accepts: {model}"
        return
    assert result.returncode != 0, (
        f"the API server accepts a case qw render refuses ({model}):\n{result.stdout}"
    )
    assert model, "qw render accepts a case the API server refuses:\n" + result.stderr
    named = server_paths(result.stderr)
    assert named, f"the refusal names no field:\n{result.stderr}"
    extra = [dotted(p) for p in case.crd_extra]
    for path in named:
        assert any(related(path, m) for m in model + extra), (
            f"the API server names {path}, qw render names {model}:\n{result.stderr}"
        )
    unnamed = [m for m in model if not any(related(m, p) for p in named)]
    # The server stops at its first failing stage: strict decoding (unknown fields) before the schema,
    # the schema before CEL rules (then it says some were not checked). Later stages go unnamed.
    stopped_early = NOT_CHECKED in result.stderr or "strict decoding error" in result.stderr
    assert not unnamed or stopped_early, (
        f"qw render names {unnamed}, which the API server does not:\n{result.stderr}"
    )


def test_examples_are_accepted_by_both(crd_server: Server) -> None:
    result = crd_server.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-R", "-f", str(ROOT / "examples")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("created (server dry run)") >= 3, result.stdout
    assert all(not item.errors for item in load_manifests(ROOT / "examples", recursive=True))


def test_the_refused_style_of_default_is_caught_here(apiserver: Server, tmp_path: Path) -> None:
    """A default of `{}` on an object with CEL rules is what a real server refused: this tier sees it."""
    (path,) = CHART_CRDS.glob("*.yaml")
    crd = yaml.safe_load(path.read_text())
    broken = copy.deepcopy(crd)
    spec = broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["autoscaling"]["default"] = {}
    target = tmp_path / "crd.yaml"
    target.write_text(yaml.safe_dump(broken))
    result = apiserver.kubectl("apply", "--dry-run=server", "-f", str(target))
    assert result.returncode != 0
    assert "no such key: minReplicas" in result.stderr, result.stderr
