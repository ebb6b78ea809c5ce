"""One value points the chart at the registry a platform team pushed the images to (`make push`), and the
NOTES say so while the unpublished defaults are in use."""

from __future__ import annotations

from typing import Any

import pytest
from helm_python import HelmError

from tests.support.rendering import notes, one, render


def images(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for kind, suffix in (("Deployment", "-operator"), ("Deployment", "-exporter"), ("StatefulSet", "-redis")):
        spec = one(objects, kind, suffix)["spec"]["template"]["spec"]
        containers = spec["containers"] + spec.get("initContainers", [])
        out[suffix] = {c["image"] for c in containers}
        env = {e["name"]: e.get("value") for c in containers for e in c.get("env", [])}
        if "QUEUEWORKER_DEFAULT_IMAGE" in env:
            out["workers"] = {env["QUEUEWORKER_DEFAULT_IMAGE"]}
    return out


def test_image_registry_prefixes_the_operator_and_worker_images_only() -> None:
    plain = images(render())
    moved = images(render({"imageRegistry": "registry.example/team"}))
    for key in ("-operator", "-exporter", "workers"):
        assert moved[key] == {f"registry.example/team/{image}" for image in plain[key]}, key
    assert moved["-redis"] == plain["-redis"]  # a published image: pulled as configured


def test_notes_say_the_default_images_are_unpublished() -> None:
    assert "no public registry serves the images" in notes()
    assert "no public registry serves the images" not in notes({"imageRegistry": "registry.example/team"})


@pytest.mark.parametrize("bad", ["has space", "/leading", "trailing/"])
def test_a_malformed_registry_is_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(HelmError, match="imageRegistry"):
        render({"imageRegistry": bad})
