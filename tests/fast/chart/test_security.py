"""Every pod the chart renders meets the "restricted" Pod Security Standard (evaluated rule by rule below,
as the PodSecurity admission controller does) and has a read-only root filesystem; checkov finds nothing
on the rendered output, and every checkov suppression in the chart carries its reason."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fast.chart.checkov_env import checkov_bin
from tests.support.rendering import CHART, CI_VALUES, containers, load_values, manifest_text, pod_spec, render

#: Volume types the restricted profile allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Every rule of the baseline and restricted Pod Security Standards (v1.28+) that `spec` breaks,
    plus this project's rule that root filesystems are read-only."""
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{field} must be unset or false")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("hostProcess pods are not allowed")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']} is not in the safe set")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser must not be 0")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"pod seccompProfile {pod_seccomp} is not allowed")
    selinux = pod_sc.get("seLinuxOptions") or {}
    if selinux.get("type") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        problems.append("pod seLinuxOptions are not allowed")
    if (pod_sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        problems.append("pod appArmorProfile must be RuntimeDefault or Localhost")
    annotations = spec.get("_annotations") or {}
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            problems.append(f"{key}: {value} is not allowed")
    for c in containers(spec):
        name = c["name"]
        sc = c.get("securityContext") or {}
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{name}: hostProcess is not allowed")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):
            problems.append(f"{name}: procMount {sc['procMount']}")
        c_selinux = sc.get("seLinuxOptions") or {}
        if c_selinux.get("type") not in SELINUX_TYPES or c_selinux.get("user") or c_selinux.get("role"):
            problems.append(f"{name}: seLinuxOptions are not allowed")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True or sc.get("runAsNonRoot") is False:
            problems.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost (pod or container)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities may add only NET_BIND_SERVICE")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem must be true")
    return problems


def pod_specs(values: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for obj in render(values):
        spec = pod_spec(obj)
        if spec is not None:
            template_meta = obj.get("spec", {}).get("template", {}).get("metadata", {})
            specs.append(
                (
                    f"{obj['kind']}/{obj['metadata']['name']}",
                    {**spec, "_annotations": template_meta.get("annotations") or {}},
                )
            )
    return specs


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_every_pod_meets_the_restricted_standard(values_file: Path) -> None:
    specs = pod_specs(load_values(values_file))
    assert specs, "no pod templates rendered"
    for where, spec in specs:
        assert restricted_violations(spec) == [], where
        # The chart's pods run as a numeric non-root user and never share a token they do not need.
        assert spec["securityContext"]["runAsUser"] >= 10000, where
        if not where.endswith("-operator"):
            assert spec.get("automountServiceAccountToken") is False, where


def test_the_rules_catch_each_violation() -> None:
    bad = {
        "hostNetwork": True,
        "securityContext": {
            "runAsUser": 0,
            "seccompProfile": {"type": "Unconfined"},
            "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
        },
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "c",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {
                    "privileged": True,
                    "capabilities": {"add": ["SYS_ADMIN"]},
                    "procMount": "Unmasked",
                },
            }
        ],
    }
    problems = "\n".join(restricted_violations(bad))
    for expected in (
        "hostNetwork",
        "hostPath",
        "kernel.msgmax",
        "pod runAsUser",
        "Unconfined",
        "privileged",
        "hostPort",
        "procMount",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile must",
        "drop ALL",
        "only NET_BIND_SERVICE",
        "readOnlyRootFilesystem",
    ):
        assert expected in problems, expected


def checkov_annotations() -> dict[str, str]:
    """Every checkov suppression written in the chart's templates: check id -> reason."""
    found: dict[str, str] = {}
    for template in (CHART / "templates").rglob("*"):
        if not template.is_file():
            continue
        for line in template.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("checkov.io/skip"):
                value = stripped.split(":", 1)[1].strip().strip('"')
                check, _, reason = value.partition("=")
                found[check] = reason
    return found


def test_every_checkov_suppression_has_a_reason() -> None:
    found = checkov_annotations()
    assert found, "no suppressions found: the parser is broken or the list below is stale"
    assert set(found) == {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_38"}
    for check, reason in found.items():
        assert len(reason.split()) >= 6, f"{check}: the reason is too short to be one: {reason!r}"


def test_checkov_reports_no_failed_check(tmp_path: Path) -> None:
    for values_file in CI_VALUES:
        (tmp_path / values_file.name).write_text(manifest_text(load_values(values_file)), encoding="utf-8")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        [
            str(checkov_bin()),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--compact",
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary = reports[0]["summary"]
    failed = [
        f"{f['check_id']} {f['check_name']} in {f['file_path']} {f['resource']}"
        for r in reports
        for f in r["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert summary["parsing_errors"] == 0
    # It really looked: every scenario's workloads were scanned.
    assert summary["passed"] > 100 * len(CI_VALUES), summary
    skipped = {s["check_id"] for r in reports for s in r["results"]["skipped_checks"]}
    assert skipped, "the suppressions were not seen"
    assert skipped <= set(checkov_annotations())


def test_pods_the_operator_builds_for_the_examples_meet_it_too() -> None:
    """The e2e namespace enforces "restricted": the worker and beat pods the operator creates there must
    pass the same rules as the chart's own pods."""
    import yaml
    from queueworker import builders
    from queueworker.api.spec import parse_manifest
    from queueworker.settings import Settings

    from tests.support.rendering import REPO

    qws = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "QueueWorker":
                qws.append(parse_manifest(doc, default_namespace="qw-e2e"))
    assert qws
    built = [o for o in builders.render(qws, Settings()) if pod_spec(o) is not None]
    assert {o["metadata"]["labels"]["app.kubernetes.io/component"] for o in built} >= {"worker", "beat"}
    for obj in built:
        assert restricted_violations(dict(pod_spec(obj) or {})) == [], obj["metadata"]["name"]
