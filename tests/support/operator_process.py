"""The operator as its image runs it (`kopf run -m queueworker_operator --standalone -A`), as a real
subprocess against a real API server, so a test can SIGKILL it mid-reconcile and start it again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.celery_worker import REPO, WORKERS


def kopf_run(*args: str) -> list[str]:
    """The operator's command line as its image runs it, with `args` (the scope, --verbose)."""
    return [sys.executable, "-m", "kopf", "run", "-m", "queueworker_operator", "--standalone", *args]


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        env: Mapping[str, str],
        log_path: Path,
        namespaces: list[str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.scope = [f"--namespace={n}" for n in namespaces] if namespaces else ["--all-namespaces"]
        paths = [str(REPO), str(REPO / "operator"), str(WORKERS)]
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                kopf_run(*self.scope, "--verbose"),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.running():
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.kill()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
