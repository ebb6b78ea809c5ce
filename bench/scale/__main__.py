"""`make bench-scale`: the operator at scale on the local cluster with the platform installed
(`make cluster-up` then `make deploy`; run as root, which reads the cluster's audit log and /proc).

It creates N QueueWorkers (1,000 by default) over 10 namespaces (`mode: builtin`, `minReplicas: 0`, a
route each) and measures:
- apply: seconds to create them all (4 concurrent clients, as fast as the API server accepts);
- converged: seconds from the first create, and from the last, until every QueueWorker's
  `status.observedGeneration` is its generation and its worker Deployment exists;
- settled: seconds from then until the operator has written nothing for 30 s (its first status
  reports and autoscaler ticks over the new QueueWorkers);
- the operator's CPU seconds over creation, convergence and idle (with its CPU limit, printed, this
  bounds how fast it can converge);
- the operator's resident memory (its process, sampled every 0.5 s): steady (the median while idle) and
  peak (over create, converge and idle);
- the operator's API requests per minute while nothing changes, reads and writes, from the audit log;
- the autoscaler's mean tick over the N queues (`queueworker_autoscaler_tick_seconds`, while idle);
- a restart: the operator pod is deleted; the seconds until its successor has reconciled all N (from the
  new process's start), its peak memory, and how many worker Deployments the restart changed
  (resourceVersion).
Then it deletes the namespaces and waits until they are gone. It prints one RESULT line with every figure
and which goals it met:
  converged < 60 s, resident < 256 MiB with peak <= 1.5x steady, 0 writes/min idle, 0 Deployments changed.

    python -m bench.scale [--queueworkers 1000] [--namespaces 10] [--idle 120] [--release-namespace NS]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from bench.scale import audit
from bench.scale.operator import SELECTOR, Memory, cpu_seconds, operator_pod, pid_of, scrape
from hack.cluster import binaries
from tests.support.kubeapi import DEPLOYMENTS, NAMESPACES, PODS, QW, Api

LABEL = "bench.queueworker.dev/scale"
WORKERS = {"app.kubernetes.io/managed-by": "queueworker-operator", "app.kubernetes.io/component": "worker"}
MIB = 1024 * 1024


def connect() -> tuple[Api, Path]:
    """The admin client of the local cluster, and its audit log."""
    root = binaries.cache_dir() / "cluster"
    config = root / "kubeconfig"
    if not config.exists():
        raise SystemExit("no local cluster: run `make cluster-up` and `make deploy` first")
    server = yaml.safe_load(config.read_text())["clusters"][0]["cluster"]["server"]
    pki = root / "pki"
    return Api(server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key"), root / "audit.log"


def manifest(namespace: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": f"qw-{i:04d}", "namespace": namespace, "labels": {LABEL: "1"}},
        "spec": {
            "app": "tasks:app",
            "queues": [f"scale_{i:04d}"],
            "routes": [f"tasks.scale{i}.*"],
            "autoscaling": {"mode": "builtin", "minReplicas": 0, "maxReplicas": 3},
        },
    }


def namespace(name: str) -> dict[str, Any]:
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "audit", "warn")}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {LABEL: "1", **labels}},
    }


def converged(api: Api) -> int:
    """How many of the bench's QueueWorkers are current and have their worker Deployment."""
    deployments = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in api.live(DEPLOYMENTS, labels=WORKERS)
    }
    done = 0
    for qw in api.live(QW, labels={LABEL: "1"}):
        meta, status = qw["metadata"], qw.get("status") or {}
        if status.get("observedGeneration") == meta.get("generation") and (
            (meta["namespace"], f"{meta['name']}-worker") in deployments
        ):
            done += 1
    return done


def wait(what: str, check: Any, timeout: float, interval: float = 1.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
    return time.time()


def worker_versions(api: Api) -> dict[str, str]:
    return {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}": d["metadata"]["resourceVersion"]
        for d in api.live(DEPLOYMENTS, labels=WORKERS)
    }


def operator_user(api: Api, release_ns: str) -> str:
    pod = operator_pod(api, release_ns)
    if pod is None:
        raise SystemExit(f"no ready operator pod in {release_ns}: run `make deploy` first")
    return f"system:serviceaccount:{release_ns}:{pod['spec'].get('serviceAccountName', 'default')}"


def restarts(api: Api, release_ns: str) -> int:
    """The operator containers' restarts (an OOM kill shows here), over its pods."""
    total = 0
    for pod in api.live(PODS, release_ns, labels=SELECTOR):
        total += sum(
            s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or []
        )
    return total


def started_at(pod: dict[str, Any]) -> float:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (status.get("state") or {}).get("running")
        if running:
            return audit.when(running["startedAt"])
    return time.time()


def run(args: argparse.Namespace) -> dict[str, Any]:
    api, log = connect()
    release_ns, n = args.release_namespace, args.queueworkers
    user = operator_user(api, release_ns)
    pod = operator_pod(api, release_ns)
    assert pod is not None
    pid = pid_of(pod["metadata"]["uid"])
    if pid is None:
        raise SystemExit("the operator's process is not on this machine: bench-scale needs the local cluster")
    spaces = [f"qw-scale-{k:02d}" for k in range(args.namespaces)]
    if any(api.read(NAMESPACES, None, ns) for ns in spaces):
        raise SystemExit(f"namespaces {spaces[0]}.. exist (an earlier run?): delete them first")
    restarted = restarts(api, release_ns)
    limits = (pod["spec"]["containers"][0].get("resources") or {}).get("limits") or {}
    memory = Memory(pid)
    cpu_before = cpu_seconds(pid) or 0.0
    figures: dict[str, Any] = {"queueworkers": n, "namespaces": len(spaces)}
    figures |= {
        "operator_cpu_limit": limits.get("cpu", "none"),
        "operator_memory_limit": limits.get("memory", "none"),
    }
    try:
        for ns in spaces:
            api.create(NAMESPACES, namespace(ns))
        print(f"creating {n} QueueWorkers in {len(spaces)} namespaces", flush=True)
        first = time.time()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: api.create(QW, manifest(spaces[i % len(spaces)], i)), range(n)))
        last = time.time()
        done = wait("convergence", lambda: converged(api) >= n, args.timeout)
        figures |= {
            "apply_s": round(last - first, 1),
            "converged_after_apply_s": round(done - last, 1),
            "converged_from_first_create_s": round(done - first, 1),
        }
        print(f"converged: {json.dumps(figures)}", flush=True)
        figures["settled_s"] = settle(log, user, done, args)
        figures |= idle(api, log, user, release_ns, memory, args)
        figures["rss_peak_mib"] = round(memory.peak(first) / MIB, 1)
        figures["peak_to_steady"] = round(figures["rss_peak_mib"] / max(figures["rss_steady_mib"], 0.1), 2)
        figures["operator_cpu_s"] = round((cpu_seconds(pid) or 0.0) - cpu_before, 1)
        figures["operator_restarts"] = restarts(api, release_ns) - restarted  # e.g. killed over its limit
        memory.stop()
        figures |= restart(api, release_ns, n, args)
    finally:
        memory.stop()
        if not args.keep:
            figures["delete_s"] = cleanup(api, spaces, args.timeout)
    return figures


def settle(log: Path, user: str, converged_at: float, args: argparse.Namespace) -> float:
    """Wait until the operator has written nothing for `args.settle` seconds (the status and autoscaler
    writes that follow convergence are over); the seconds from convergence until then."""
    offset = max(0, log.stat().st_size - 50_000_000)
    while True:
        now = time.time()
        if now - converged_at >= args.settle:
            recent = audit.requests(log, user, now - args.settle, now, offset=offset)
            if recent.writes == 0:
                return round(now - args.settle - converged_at, 1)
            print(f"settling: {recent.writes} writes in the last {args.settle:.0f} s", flush=True)
        if now - converged_at > args.timeout:
            raise SystemExit(f"the operator kept writing for {args.timeout:.0f} s after converging")
        time.sleep(10)


def idle(
    api: Api, log: Path, user: str, release_ns: str, memory: Memory, args: argparse.Namespace
) -> dict[str, Any]:
    print(f"idle for {args.idle} s: counting the operator's requests", flush=True)
    offset = log.stat().st_size
    before = scrape(api, release_ns, "queueworker-operator")
    start = time.time()
    time.sleep(args.idle)
    end = time.time()
    after = scrape(api, release_ns, "queueworker-operator")
    time.sleep(2)  # let the server finish writing the window's events
    seen = audit.requests(log, user, start, end, offset=max(0, offset - 1_000_000))
    ticks = after.get("queueworker_autoscaler_tick_seconds_count", 0) - before.get(
        "queueworker_autoscaler_tick_seconds_count", 0
    )
    tick_sum = after.get("queueworker_autoscaler_tick_seconds_sum", 0) - before.get(
        "queueworker_autoscaler_tick_seconds_sum", 0
    )
    print(f"idle requests by verb and resource: {dict(seen.by_resource)}", flush=True)
    return {
        "idle_reads_per_min": seen.per_minute(seen.reads),
        "idle_writes_per_min": seen.per_minute(seen.writes),
        "rss_steady_mib": round(memory.median(start, end) / MIB, 1),
        "autoscaler_tick_mean_s": round(tick_sum / ticks, 3) if ticks else None,
        "autoscaler_ticks": int(ticks),
    }


def restart(api: Api, release_ns: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    before = worker_versions(api)
    old = operator_pod(api, release_ns)
    assert old is not None
    print("restarting the operator", flush=True)
    deleted = time.time()
    api.delete(PODS, release_ns, old["metadata"]["name"])
    new: dict[str, Any] = {}

    def successor() -> bool:
        pod = operator_pod(api, release_ns)
        if pod is None or pod["metadata"]["uid"] == old["metadata"]["uid"]:
            return False
        new.update(pod)
        return True

    wait("a new operator pod", successor, args.timeout, interval=0.5)
    pid = pid_of(new["metadata"]["uid"])
    memory = Memory(pid) if pid else None

    def reconciled_all() -> bool:
        try:
            return scrape(api, release_ns, "queueworker-operator").get("queueworker_reconciles_total", 0) >= n
        except AssertionError:  # the service does not route to the new pod yet
            return False

    done = wait("the restarted operator's reconciles", reconciled_all, args.timeout)
    time.sleep(args.settle)
    after = worker_versions(api)
    changed = sorted(k for k, v in before.items() if after.get(k) != v)
    if memory is not None:
        memory.stop()
    return {
        "cold_start_converged_s": round(done - started_at(new), 1),
        "restart_to_converged_s": round(done - deleted, 1),
        "cold_start_rss_peak_mib": round(memory.peak() / MIB, 1) if memory else None,
        "restart_changed_deployments": len(changed),
    }


def cleanup(api: Api, spaces: list[str], timeout: float) -> float:
    print("deleting the namespaces", flush=True)
    started = time.time()
    for ns in spaces:
        api.delete(NAMESPACES, None, ns)
    wait("namespace deletion", lambda: not any(api.read(NAMESPACES, None, ns) for ns in spaces), timeout, 2.0)
    return round(time.time() - started, 1)


def goals(f: dict[str, Any]) -> list[str]:
    missed = []
    if f.get("converged_after_apply_s", 1e9) >= 60:
        missed.append("converged<60s")
    if f.get("rss_peak_mib", 1e9) >= 256 or f.get("peak_to_steady", 1e9) > 1.5:
        missed.append("rss<256MiB,peak<=1.5x")
    if f.get("idle_writes_per_min", 1) != 0:
        missed.append("0-writes-idle")
    if f.get("operator_restarts", 1) != 0:
        missed.append("no-operator-restart")
    if f.get("restart_changed_deployments", 1) != 0:
        missed.append("0-changed-by-restart")
    return missed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--queueworkers", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of the idle window")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="seconds without a write before the idle window"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--release-namespace", default="queueworker-system")
    parser.add_argument("--keep", action="store_true", help="leave the QueueWorkers in place")
    args = parser.parse_args(argv)
    figures = run(args)
    missed = goals(figures)
    line = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"RESULT {line} goals={'met' if not missed else 'missed:' + ','.join(missed)}", flush=True)
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
