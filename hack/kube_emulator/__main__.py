"""python -m hack.kube_emulator [PORT] [KUBECONFIG]: serve it, for trying the operator with kubectl."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hack.kube_emulator import serve

asyncio.run(
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
)
