"""The cluster's API server is the judge of manifests: with the chart's CRD installed (as `helm install`
does, from crds/), `kubectl apply --validate=strict` stores every valid case of tests/cases and refuses
every invalid one naming the field (structural schema, CEL rules, unknown fields), with the same verdict
as `qw render` (tests/support/verdicts.py). Real applies, not dry runs: this module runs before the
release is installed, so no operator reconciles what it stores, and it deletes all of it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster
from tests.support import verdicts
from tests.support.cases import Case, load_cases

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "charts" / "queueworker" / "crds"
CASES = load_cases()
NAMESPACE = "qw-e2e-verdicts"
CRD = "crd/queueworkers.queueworker.dev"


@pytest.fixture(scope="module")
def judge(cluster: Cluster) -> Iterator[Cluster]:
    # as a user upgrades it (Helm installs crds/ once, never upgrades them): this one wins conflicts
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", CRD)
    created = [NAMESPACE, *sorted(verdicts.namespaces_named(CASES))]
    for namespace in created:
        cluster.kubectl("create", "namespace", namespace, check=False)
    try:
        yield cluster
    finally:
        for namespace in created:
            cluster.kubectl("delete", "queueworkers", "--all", "-n", namespace, "--wait=true", check=False)
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_cluster_and_qw_render_agree(judge: Cluster, case: Case) -> None:
    meta = case.obj.get("metadata") if isinstance(case.obj, dict) else None
    named = isinstance(meta, dict) and meta.get("namespace") is not None
    target = [] if named else ["-n", NAMESPACE]  # kubectl refuses -n that differs from the manifest's
    result = judge.kubectl("apply", "--validate=strict", *target, "-f", str(case.path), check=False)
    verdicts.check(case, result.returncode, result.stdout, result.stderr)
    if case.valid:  # stored as sent: the server's answer is the object, with the CRD's defaults
        assert "created" in result.stdout or "configured" in result.stdout, result.stdout


def test_the_examples_are_stored(judge: Cluster) -> None:
    result = judge.kubectl("apply", "--validate=strict", "-n", NAMESPACE, "-R", "-f", str(REPO / "examples"))
    assert result.stdout.count("queueworker.queueworker.dev/") >= 5, result.stdout
    names = judge.kubectl("get", "qw", "-n", NAMESPACE, "-o", "name").stdout.split()
    assert {"queueworker.queueworker.dev/task-a", "queueworker.queueworker.dev/default"} <= set(names), names
