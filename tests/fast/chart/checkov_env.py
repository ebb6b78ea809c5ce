"""checkov in its own virtualenv (it pins an old `packaging` that would break the project's venv).

Created on first use under $QW_CHECKOV_VENV, default ~/.cache/queueworker/checkov-venv (outside the
repository, so it survives `make clean` and is shared by worktrees): about a minute once, then reused.
The version is pinned so the checks do not change under the suite.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

CHECKOV_VERSION = "3.3.30"


def venv_dir() -> Path:
    default = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "queueworker" / "checkov-venv"
    )
    return Path(os.environ.get("QW_CHECKOV_VENV") or default)


def checkov_bin() -> Path:
    """Path of a checkov executable of CHECKOV_VERSION, installing it when missing."""
    venv = venv_dir()
    exe = venv / "bin" / "checkov"
    stamp = venv / f".checkov-{CHECKOV_VERSION}"
    if exe.exists() and stamp.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    # One installer at a time: concurrent test runs on a fresh machine wait for the first.
    with open(venv.parent / f".{venv.name}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists() and stamp.exists():
            return exe
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        print(f"installing checkov {CHECKOV_VERSION} into {venv} (once)", file=sys.stderr)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"checkov=={CHECKOV_VERSION}"],
            check=True,
            timeout=1200,
        )
        stamp.touch()
    return exe
