"""Install or upgrade the chart on a kind cluster with the real Helm engine (helm-python-sdk): no helm
binary needed. Used by `make deploy` and by the e2e suite.

    python -m hack.deploy --context kind-queueworker --namespace queueworker-system --tag dev
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "queueworker"
KIND_VALUES = CHART / "ci" / "kind-values.yaml"
#: The Redis image of the local cluster (hack/images/build.sh: Debian's redis-server), never pulled.
LOCAL_REDIS: dict[str, Any] = {
    "redis": {"image": {"repository": "queueworker.local/redis", "tag": "local", "pullPolicy": "Never"}}
}


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
    """ci/kind-values.yaml with the locally built images (loaded into kind by `make images`)."""
    values = yaml.safe_load(KIND_VALUES.read_text(encoding="utf-8")) or {}
    images = {
        "operator": {"image": {"repository": "queueworker/operator", "tag": tag, "pullPolicy": pull_policy}},
        "worker": {"image": {"repository": "queueworker/worker", "tag": tag, "pullPolicy": pull_policy}},
    }
    return merge(merge(values, images), extra or {})


def release_exists(config: helm.Config, release: str) -> bool:
    try:
        config.status(release)
    except helm.HelmNotFoundError:
        return False
    return True


def install_or_upgrade(
    context: str, namespace: str, release: str, values: dict[str, Any], timeout: int = 420
) -> dict[str, Any]:
    """`helm upgrade --install --wait` of the chart; returns the release summary."""
    with helm.Config(kube_context=context, namespace=namespace) as config:
        if release_exists(config, release):
            result = config.upgrade(
                str(CHART),
                release,
                values,
                namespace=namespace,
                timeout=timeout,
                wait="watcher",
                cleanup_on_fail=False,
            )
        else:
            result = config.install(
                str(CHART),
                release,
                values,
                namespace=namespace,
                timeout=timeout,
                wait="watcher",
                create_namespace=True,
            )
    return dict(result)


def uninstall(context: str, namespace: str, release: str, timeout: int = 300) -> None:
    with helm.Config(kube_context=context, namespace=namespace) as config:
        config.uninstall(release, timeout=timeout, wait="watcher", ignore_not_found=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--context", default="kind-queueworker", help="kube context (default kind-queueworker)"
    )
    parser.add_argument("--namespace", default="queueworker-system")
    parser.add_argument("--release", default="queueworker")
    parser.add_argument("--tag", default="dev", help="tag of the locally built images")
    args = parser.parse_args(argv)
    if not args.context.startswith("kind-"):
        print(f"refusing context {args.context!r}: `make deploy` only targets kind clusters", file=sys.stderr)
        return 2
    result = install_or_upgrade(args.context, args.namespace, args.release, kind_values(args.tag))
    revision, status = result.get("revision"), result.get("status")
    print(f"release {args.release} in {args.namespace}: revision {revision}, {status}")
    if result.get("notes"):
        print(result["notes"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
