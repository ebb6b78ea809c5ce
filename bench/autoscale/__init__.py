"""Autoscaling benchmark: a discrete-event simulation of one queue under the builtin policy, a KEDA-default
emulation and an HPA on queue length. `python -m bench.autoscale` runs it alone."""

from __future__ import annotations

from bench.autoscale.main import main

__all__ = ["main"]
