"""The broker URL reaches pods only through a Secret reference, and no rendered object but the Secret holds
the password: every pod template and ConfigMap of `qw render` (examples and generated valid manifests)
and of the chart (every CI scenario, a generated password and a user's external URL)."""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from queueworker.settings import Settings

from tests.fast.security.rendered import (
    BROKER_ENV,
    Obj,
    built,
    chart_objects,
    chart_scenarios,
    example_queueworkers,
    pod_templates,
    text_of,
)
from tests.fast.unit.test_builders_property import manifests
from tests.support.rendering import containers, find

SENTINEL = "Sntl-77c0ffee-pw"
SCHEMES = ("redis://", "rediss://", "unix://")


def broker_refs_only(
    objects: list[Obj], secret: str, key: str, user_env: Collection[str] = frozenset()
) -> int:
    """Assert the broker reaches every container only as secretKeyRef(secret, key); return how many
    containers were checked."""
    checked = 0
    for where, meta, spec in pod_templates(objects):
        for annotation in (meta.get("annotations") or {}).values():
            assert not any(s in str(annotation) for s in SCHEMES), (where, annotation)
        for c in containers(spec):
            checked += 1
            for part in [*(c.get("command") or []), *(c.get("args") or [])]:
                assert not any(s in part for s in SCHEMES), (where, part)
            env = {e["name"]: e for e in c.get("env") or []}
            for name, entry in env.items():
                if name in user_env:
                    continue
                assert not any(s in str(entry.get("value", "")) for s in SCHEMES), (where, entry)
            for name in BROKER_ENV:
                if name in env and name not in user_env:
                    ref = {"secretKeyRef": {"name": secret, "key": key}}
                    assert env[name] == {"name": name, "valueFrom": ref}, (where, env[name])
            assert set(BROKER_ENV) & set(env) or not c["name"].startswith(("worker", "beat")), (
                f"{where}: {c['name']} gets no broker URL"
            )
    return checked


def test_examples_through_qw_render() -> None:
    from queueworker.builders import render

    for config in (Settings(), Settings(broker_secret="team-broker", broker_secret_key="redis-url")):
        objects = render(example_queueworkers(), config)
        assert broker_refs_only(objects, config.broker_secret, config.broker_secret_key) >= 3
        for cm in find(objects, "ConfigMap"):
            assert not any(s in text_of(cm) for s in SCHEMES), cm["metadata"]["name"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(manifest=manifests())
def test_generated_manifests_through_the_builders(manifest: dict[str, Any]) -> None:
    objects = built(manifest)
    assume(objects)
    user_env = {e["name"] for e in manifest["spec"].get("env") or []}
    assert broker_refs_only(objects, "queueworker-broker", "url", user_env) >= 1


@pytest.mark.parametrize(
    ("name", "values"), list(chart_scenarios()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_chart_scenarios(name: str, values: dict[str, Any]) -> None:
    objects = chart_objects(values)
    secrets = find(objects, "Secret")
    hidden = set()
    for secret in secrets:
        for key, value in (secret.get("data") or {}).items():
            decoded = base64.b64decode(value).decode()
            if key in ("password", "url") and decoded:
                hidden.add(decoded)
                if "@" in decoded:
                    hidden.add(decoded.split("@")[0].rsplit(":", 1)[-1])
        for value in (secret.get("stringData") or {}).values():
            hidden.add(str(value))
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = text_of(obj)
        for secret_text in hidden:
            assert secret_text not in text, f"{obj['kind']}/{obj['metadata']['name']} holds a secret"
    broker_secret = values.get("broker", {}).get("secretName", "queueworker-broker")
    checked = 0
    for where, _, spec in pod_templates(objects):
        for c in containers(spec):
            checked += 1
            for entry in c.get("env") or []:
                assert not any(s in str(entry.get("value", "")) for s in SCHEMES), (where, entry)
                if entry["name"] in BROKER_ENV:
                    assert "secretKeyRef" in entry["valueFrom"], (where, entry)
            words = [*(c.get("command") or []), *(c.get("args") or [])]
            assert not any(s in p for p in words for s in SCHEMES), (where, words)
    print(
        f"\n[security] chart {name}: {checked} containers, {len(hidden)} secret values, "
        f"Secret {broker_secret}"
    )


def test_chart_with_a_sentinel_external_url() -> None:
    url = f"redis://:{SENTINEL}@redis.example:6379/0"
    objects = chart_objects({"redis": {"enabled": False}, "externalRedis": {"url": url}})

    def holds(o: Obj) -> bool:
        url_data = base64.b64decode(str((o.get("data") or {}).get("url", ""))).decode(errors="replace")
        return SENTINEL in text_of(o) or SENTINEL in url_data

    holders = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if holds(o)]
    assert holders == ["Secret/queueworker-broker"], holders
    for cm in find(objects, "ConfigMap"):
        assert SENTINEL not in text_of(cm)
