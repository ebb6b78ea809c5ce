"""`make bench`: every benchmark module that exists, in order, then the RESULT line for the burst trace
(builtin against KEDA's defaults), preceded by RESULT_TUNED (builtin-60 against keda-tuned) when given.

Each module exposes `main() -> dict`. A module that is not there is skipped with a note; one that fails
is reported and the run goes on; the exit status is non-zero if any failed or the RESULT is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import time
import traceback
from typing import Any

MODULES = ("bench.scrape", "bench.overhead", "bench.converge", "bench.autoscale", "bench.realrun")
#: The module whose burst-trace figures make the RESULT line; it prints its own report (the others'
#: returned dicts are printed as JSON).
AUTOSCALE = "bench.autoscale"


def _run(name: str) -> dict[str, Any] | None:
    module = importlib.import_module(name)
    main = module.main
    params = inspect.signature(main).parameters
    result = main([]) if "argv" in params else main()  # never let a module parse `make bench`'s argv
    return result if isinstance(result, dict) else {"result": result}


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its package is missing
        return False


def main() -> int:
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name in MODULES:
        if not _present(name):
            print(f"== {name}: not present, skipped ==", flush=True)
            continue
        print(f"== {name} ==", flush=True)
        started = time.perf_counter()
        try:
            result = _run(name)
        except Exception:
            traceback.print_exc()
            print(f"== {name}: FAILED after {time.perf_counter() - started:.1f}s ==", flush=True)
            failed.append(name)
            continue
        if result is not None:
            results[name] = result
            if name != AUTOSCALE:
                print(json.dumps(result, indent=2, default=str))
        print(f"== {name}: done in {time.perf_counter() - started:.1f}s ==", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    autoscale = results.get(AUTOSCALE)
    if autoscale is None:
        print(f"RESULT missing: {AUTOSCALE} did not run")
        return 1
    if "tuned_p95_wait_ratio" in autoscale:  # builtin-60 against keda-tuned; RESULT stays the last line
        print(
            f"RESULT_TUNED p95_wait_ratio={autoscale['tuned_p95_wait_ratio']:.2f}"
            f" cost_ratio={autoscale['tuned_cost_ratio']:.2f}"
        )
    print(f"RESULT p95_wait_ratio={autoscale['p95_wait_ratio']:.2f} cost_ratio={autoscale['cost_ratio']:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
