"""The API server and `qw render` give every manifest of tests/cases and examples/ the same verdict:
accepted by both, or refused by both naming the same fields. kubectl sends each file as a user's
`kubectl apply --validate=strict` would (server-side dry run), so YAML is read by Go's parser too."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from queueworker.api.manifests import load_manifests

from tests.apiserver.conftest import CHART_CRDS, ROOT, Server
from tests.support import verdicts
from tests.support.cases import Case, load_cases

CASES = load_cases()


@pytest.fixture(scope="module")
def namespaces(crd_server: Server) -> Server:
    """The namespaces valid cases name exist, so only the manifest itself is judged."""
    for namespace in sorted(verdicts.namespaces_named(CASES)):
        crd_server.kubectl("create", "namespace", namespace)
    return crd_server


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_api_server_and_qw_render_agree(namespaces: Server, case: Case) -> None:
    result = namespaces.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", str(case.path))
    verdicts.check(case, result.returncode, result.stdout, result.stderr)


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
