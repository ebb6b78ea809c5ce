"""The development workflow files: skaffold.yaml (against the published v4beta14 schema), the kind
config, and the Makefile targets."""

from __future__ import annotations

import json
import re
import subprocess

import jsonschema
import yaml

from tests.support.rendering import CHART, REPO, load_values, render
from tests.support.validate import shared_dir

SKAFFOLD = yaml.safe_load((REPO / "skaffold.yaml").read_text(encoding="utf-8"))
SCHEMA_PATH = shared_dir() / "schemas" / "skaffold-v4beta14.json"


def skaffold_errors(config: dict) -> list[str]:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(config)]


def test_skaffold_yaml_matches_the_v4beta14_schema() -> None:
    assert SKAFFOLD["apiVersion"] == "skaffold/v4beta14"
    assert skaffold_errors(SKAFFOLD) == []
    assert skaffold_errors({**SKAFFOLD, "deploi": {}}) != [], "the schema rejects unknown keys"


def test_skaffold_builds_both_images_and_deploys_the_chart() -> None:
    artifacts = {a["image"]: a for a in SKAFFOLD["build"]["artifacts"]}
    assert set(artifacts) == {"queueworker/operator", "queueworker/worker"}
    for image, artifact in artifacts.items():
        name = image.split("/")[1]
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == "images/Dockerfile"
        assert artifact["docker"]["target"] == name  # the Dockerfile's stage for this image
        assert (REPO / artifact["docker"]["dockerfile"]).exists()
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"]).resolve() == CHART
    templates = release["setValueTemplates"]
    for component, image in (("operator", "queueworker_operator"), ("worker", "queueworker_worker")):
        assert templates[f"{component}.image.repository"] == f"{{{{.IMAGE_REPO_{image}}}}}"
        assert templates[f"{component}.image.tag"] == f"{{{{.IMAGE_TAG_{image}}}}}"
    # The templated keys are real values of the chart, and render.
    values = {
        "operator": {"image": {"repository": "r/o", "tag": "t1"}},
        "worker": {"image": {"repository": "r/w", "tag": "t2"}},
    }
    images = {
        c["image"]
        for o in render(values)
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"r/o:t1", "r/w:t2"}


def test_kind_profile_targets_the_kind_cluster() -> None:
    (profile,) = [p for p in SKAFFOLD["profiles"] if p["name"] == "kind"]
    kind_config = yaml.safe_load((REPO / "tests" / "e2e" / "kind-config.yaml").read_text(encoding="utf-8"))
    context = f"kind-{kind_config['name']}"
    assert profile["activation"] == [{"kubeContext": context}]
    patches = {p["path"]: p["value"] for p in profile["patches"]}
    assert patches["/deploy/kubeContext"] == context
    (values_file,) = patches["/deploy/helm/releases/0/valuesFiles"]
    assert (REPO / values_file).parent == CHART / "ci", "the kind values are a tested ci/ scenario"
    assert render(load_values(REPO / values_file))
    assert kind_config["kind"] == "Cluster" and kind_config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in kind_config["nodes"]].count("control-plane") == 1


def test_makefile_has_the_workflow_targets() -> None:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in (
        "cluster-up",
        "cluster-down",
        "k8s-bin",
        "kind-up",
        "kind-down",
        "images",
        "push",
        "deploy",
        "dev",
        "e2e",
        "crds",
    ):
        assert re.search(rf"^{target}:.*## \S", text, flags=re.MULTILINE), f"target {target} (with a ## help)"
    dry = subprocess.run(["make", "-n", "crds"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "python -m hack.crdgen --write" in dry.stdout  # both CRD copies from the field table
    dry = subprocess.run(["make", "-n", "dev"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "skaffold dev --profile kind --kube-context kind-queueworker" in dry.stdout
    push = ["make", "-n", "push", "REGISTRY=r.example/team"]
    dry = subprocess.run(push, cwd=REPO, capture_output=True, text=True, check=True)
    build = "docker build -f images/Dockerfile --target $image -t r.example/team/queueworker/$image"
    assert build in dry.stdout
    assert "for image in operator worker" in dry.stdout
