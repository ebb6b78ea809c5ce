"""The tests' one way to run kubectl, as a user does: the session's API server
(`tests.support.control_plane.Server.kubectl`, by its kubeconfig) and the e2e cluster
(`tests.e2e.cluster.Cluster.kubectl`, by its context) both run it here. (hack/cluster/client.py is the
local cluster's own, for `make cluster-up`.)"""

from __future__ import annotations

import subprocess
from pathlib import Path


def kubectl(
    tool: str | Path,
    target: str,
    *args: str,
    stdin: str | None = None,
    check: bool = False,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`tool target args...` (target: `--kubeconfig=...` or `--context=...`); with `check`, a non-zero exit
    fails the test with kubectl's own message."""
    result = subprocess.run(
        [str(tool), target, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result
