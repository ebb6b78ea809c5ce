"""One verdict rule for a manifest judged by a real API server (`kubectl apply --validate=strict`) and by
`qw render` (load_manifests): both accept it, or both refuse it naming the same fields. Used by the API
server tier (server-side dry run on etcd + kube-apiserver) and by the e2e suite (real applies on a
cluster)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from queueworker.api.manifests import load_manifests

from tests.support.cases import Case
from tests.support.kubeapi import QW, Api

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


def check(case: Case, returncode: int, stdout: str, stderr: str) -> None:
    """Fail (AssertionError, saying how) unless the server's answer and qw render's agree on `case`."""
    model = model_paths(case.path)
    if case.valid:
        assert returncode == 0, f"the API server refuses a case qw render accepts:\n{stderr}"
        assert model == [], f"qw render refuses a case the API server accepts: {model}"
        return
    assert returncode != 0, f"the API server accepts a case qw render refuses ({model}):\n{stdout}"
    assert model, "qw render accepts a case the API server refuses:\n" + stderr
    named = server_paths(stderr)
    assert named, f"the refusal names no field:\n{stderr}"
    extra = [dotted(p) for p in case.crd_extra]
    for path in named:
        assert any(related(path, m) for m in model + extra), (
            f"the API server names {path}, qw render names {model}:\n{stderr}"
        )
    unnamed = [m for m in model if not any(related(m, p) for p in named)]
    # The server stops at its first failing stage: strict decoding (unknown fields) before the schema,
    # the schema before CEL rules (then it says some were not checked). Later stages go unnamed.
    stopped_early = NOT_CHECKED in stderr or "strict decoding error" in stderr
    assert not unnamed or stopped_early, (
        f"qw render names {unnamed}, which the API server does not:\n{stderr}"
    )


def namespaces_named(cases: list[Case]) -> set[str]:
    """The namespaces valid cases name: they must exist so that only the manifest itself is judged."""
    out: set[str] = set()
    for case in cases:
        meta = case.obj.get("metadata") if isinstance(case.obj, dict) else None
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        if case.valid and isinstance(namespace, str):
            out.add(namespace)
    return out


def dry_run(api: Api, namespace: str, obj: Any) -> tuple[dict[str, Any] | None, list[str], str]:
    """Create `obj` in `namespace` as a server-side dry run with strict field validation (what
    `kubectl apply --dry-run=server --validate=strict` asks): (the object as it would be stored, or None
    when refused; the field paths the refusal names; its message)."""
    body = as_go_json(obj)
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    params = {"dryRun": "All", "fieldValidation": "Strict"}
    code, answer = api.request("POST", QW.path(namespace), body, params=params)
    if code < 300:
        return answer, [], ""
    answer = answer if isinstance(answer, dict) else {}
    message = str(answer.get("message", ""))
    causes = [
        str(c["field"])
        for c in (answer.get("details") or {}).get("causes") or []
        if c.get("field") and c["field"] != "<nil>"
    ]
    paths = [p.lstrip(".") for p in causes] or server_paths(message)
    return None, paths, message


def as_go_json(value: Any) -> Any:
    """`value` as kubectl sends it: Go reads YAML numbers as float64 and writes an integral one as `2`,
    not `2.0` (which the server would read as a float)."""
    if isinstance(value, dict):
        return {k: as_go_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_go_json(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value
