"""Install or upgrade the chart, with the locally built images, on whichever cluster is up: the local
cluster of `make cluster-up` first, else kind. `make deploy` and the e2e suite install with the real helm
CLI (built by hack/addons/build.sh), with the same values.

    python -m hack.deploy [--context CONTEXT] [--namespace queueworker-system] [--tag dev]

What the cluster runs decides the integrations: with the Prometheus Operator's CRDs, the ServiceMonitor,
PodMonitor, PrometheusRule and dashboards are on; with KEDA's, `keda.enabled` is.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from hack.cluster import binaries

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "queueworker"
KIND_VALUES = CHART / "ci" / "kind-values.yaml"
LOCAL_VALUES = CHART / "ci" / "local-cluster-values.yaml"
LOCAL_CONTEXT = "queueworker-local"
KIND_CONTEXT = "kind-queueworker"
#: Every monitoring integration (as the local cluster's values file has them), for kind with the CRDs.
MONITORING: dict[str, Any] = {
    "monitoring": {
        "serviceMonitor": {"enabled": True, "interval": "5s"},
        "podMonitor": {"enabled": True, "interval": "5s"},
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True},
    }
}
KEDA: dict[str, Any] = {"keda": {"enabled": True}}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def kind_values(
    tag: str, pull_policy: str = "IfNotPresent", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """ci/kind-values.yaml with the locally built images (loaded into the nodes by `make images`)."""
    values = yaml.safe_load(KIND_VALUES.read_text(encoding="utf-8")) or {}
    return merge(merge(values, images(tag, pull_policy)), extra or {})


def images(tag: str, pull_policy: str) -> dict[str, Any]:
    """The operator and worker images that `make images` builds, at `tag`."""
    return {
        "operator": {"image": {"repository": "queueworker/operator", "tag": tag, "pullPolicy": pull_policy}},
        "worker": {"image": {"repository": "queueworker/worker", "tag": tag, "pullPolicy": pull_policy}},
    }


def kubeconfig_env(context: str) -> dict[str, str]:
    """The environment kubectl and helm need for `context`: the local cluster's kubeconfig, or yours."""
    env = dict(os.environ)
    if context == LOCAL_CONTEXT:
        env["KUBECONFIG"] = str(binaries.cache_dir() / "cluster" / "kubeconfig")
    return env


def kubectl_bin() -> str:
    """The kubectl built with the local cluster (hack/k8s/build.sh), else the one on PATH."""
    built = binaries.cache_dir() / f"k8s-{binaries.release()}" / "bin" / "kubectl"
    return str(built) if built.exists() else "kubectl"


def api_groups(context: str) -> set[str] | None:
    """The API groups `context` serves, or None when it does not answer."""
    try:
        out = subprocess.run(
            [kubectl_bin(), "--context", context, "api-versions", "--request-timeout=5s"],
            capture_output=True,
            text=True,
            env=kubeconfig_env(context),
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return {line.split("/")[0] for line in out.stdout.split() if "/" in line}


def platform_values(context: str, tag: str, groups: set[str]) -> dict[str, Any]:
    """The release's values on `context`: the local cluster's values file (what the helm install line of
    docs/kubernetes.md passes), or kind's; the images of `tag`; each integration on where the cluster
    serves it."""
    if context == LOCAL_CONTEXT:
        values = yaml.safe_load(LOCAL_VALUES.read_text(encoding="utf-8"))
        values = merge(values, images(tag, "Never"))
    else:
        values = merge(kind_values(tag), merge(MONITORING, KEDA))
    if "monitoring.coreos.com" not in groups:
        values = merge(values, {"monitoring": {k: {"enabled": False} for k in MONITORING["monitoring"]}})
    if "keda.sh" not in groups:
        values = merge(values, {"keda": {"enabled": False}})
    return values


def helm_binary() -> str:
    """The helm CLI built here (hack/addons/build.sh helm, cached; `make tools`)."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "addons" / "build.sh"), "helm"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"building the helm CLI failed:\n{out.stderr[-3000:]}")
    return str(Path(out.stdout.split()[-1]) / "helm")


def install_or_upgrade(
    context: str, namespace: str, release: str, values: dict[str, Any], timeout: int = 420
) -> None:
    """`helm upgrade --install --wait` with the real CLI; fails with helm's own message."""
    code = helm_cli(context, namespace, release, values, helm_binary(), timeout=timeout)
    if code != 0:
        raise RuntimeError(f"helm upgrade --install {release} failed (exit {code}); see its output above")


def uninstall(context: str, namespace: str, release: str, timeout: int = 300) -> None:
    command = [helm_binary(), "uninstall", release, "-n", namespace, "--kube-context", context, "--wait"]
    command += ["--ignore-not-found", "--timeout", f"{timeout}s"]
    out = subprocess.run(command, env=kubeconfig_env(context), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"helm uninstall {release} failed: {out.stderr}")


def image_ids(tag: str) -> dict[str, Any]:
    """Pod annotations naming the built images' IDs: a rebuilt image under the same tag (never pulled)
    then rolls the operator and exporter pods on the next `make deploy`."""

    def image_id(name: str) -> str | None:
        try:
            out = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Id}}", f"queueworker/{name}:{tag}"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip().removeprefix("sha256:")[:40] if out.returncode == 0 else None

    values: dict[str, Any] = {}
    for part, image in (("operator", "operator"), ("exporter", "worker")):
        found = image_id(image)
        if found:
            values[part] = {"podAnnotations": {"queueworker.dev/image-id": found}}
    return values


def pick_context(wanted: str | None) -> tuple[str, set[str]]:
    """`wanted`, else the local cluster, else kind: the first that answers, with its API groups."""
    for context in [wanted] if wanted else [LOCAL_CONTEXT, KIND_CONTEXT]:
        groups = api_groups(context)
        if groups is not None:
            return context, groups
    tried = wanted or f"{LOCAL_CONTEXT} (sudo make cluster-up) and {KIND_CONTEXT} (make kind-up)"
    raise SystemExit(f"no cluster answers: tried {tried}; start one first")


def helm_cli(
    context: str, namespace: str, release: str, values: dict[str, Any], helm_bin: str, *, timeout: int = 420
) -> int:
    """`helm upgrade --install --wait` with the real CLI, the values in a file as a user would pass them."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="queueworker-values-") as file:
        json.dump(values, file)
        file.flush()
        command = [
            helm_bin,
            "upgrade",
            "--install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--create-namespace",
            "--kube-context",
            context,
            "--values",
            file.name,
            "--wait",
            "--timeout",
            f"{timeout}s",
        ]
        print("+ " + " ".join(command), file=sys.stderr)
        return subprocess.run(command, env=kubeconfig_env(context), check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", help="kube context (default: queueworker-local, else kind-queueworker)")
    parser.add_argument("--namespace", default="queueworker-system")
    parser.add_argument("--release", default="queueworker")
    parser.add_argument("--tag", default="dev", help="tag of the locally built images")
    parser.add_argument("--helm", default="helm", help="the helm binary (default: helm on PATH)")
    args = parser.parse_args(argv)
    if args.context and args.context not in (LOCAL_CONTEXT, KIND_CONTEXT):
        print(
            f"refusing context {args.context!r}: `make deploy` targets the local cluster or kind "
            f"({LOCAL_CONTEXT}, {KIND_CONTEXT}); for your own cluster use the README's helm install",
            file=sys.stderr,
        )
        return 2
    context, groups = pick_context(args.context)
    values = merge(platform_values(context, args.tag, groups), image_ids(args.tag))
    on = [
        name
        for name, group in (("monitoring", "monitoring.coreos.com"), ("keda", "keda.sh"))
        if group in groups
    ]
    print(f"deploying to {context} (integrations on: {', '.join(on) or 'none'})", file=sys.stderr)
    return helm_cli(context, args.namespace, args.release, values, args.helm)


if __name__ == "__main__":
    sys.exit(main())
