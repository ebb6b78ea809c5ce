"""`qw up`: run QueueWorker manifests on this machine.

Start order: workdir lock, watchdog, Redis (embedded unless --redis-url), routes file, targets and beat
schedules, exporter, beat, then the control loop, which starts and stops workers. Stop order (Ctrl-C,
SIGTERM, --duration, or the end of --demo): workers (warm shutdown within their grace period), beat and
exporter, Redis, watchdog. A second Ctrl-C kills what is left at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis

from queueworker.api.spec import QueueWorker
from queueworker.broker.client import connect
from queueworker.contract import redact
from queueworker.local import workdir
from queueworker.local.commands import LocalContext, beat_command, exporter_command
from queueworker.local.control import Controller, Managed, policy_config
from queueworker.local.demo import Burst, Demo
from queueworker.local.embedded import EmbeddedRedis, EmbeddedRedisError
from queueworker.local.output import Output
from queueworker.local.sentinel import EmbeddedSentinel
from queueworker.local.supervisor import Child, Supervisor
from queueworker.local.view import Row, publish
from queueworker.local.watchdog import Watchdog

SERVICE_GRACE = 10.0


@dataclass
class UpOptions:
    qws: list[tuple[QueueWorker, Path | None]]
    roots: tuple[Path, ...] = ()
    redis_url: str | None = None
    broker: str = "standalone"
    workdir: Path = field(default_factory=workdir.resolve)
    interval: float = 2.0
    exporter_port: int = 9808
    scale_down_delay: float | None = None
    log_level: str = "warning"
    live: bool | None = None
    duration: float | None = None
    bursts: list[Burst] = field(default_factory=list)
    demo: bool = False


class Stop:
    """Signal flags: the first SIGINT/SIGTERM/SIGHUP asks for a graceful stop, the next one for a kill."""

    def __init__(self) -> None:
        self.requested = False
        self.hurry = False
        self.failed = False
        self.why = ""

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            self.hurry = True
        self.requested = True
        self.why = self.why or signal.Signals(signum).name

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.handler)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def write_routes(path: Path, qws: list[QueueWorker]) -> None:
    from queueworker.api.routes import routes_document

    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(routes_document(qws), indent=2) + "\n")
    tmp.replace(path)


def sync_beat(url: str, qws: list[QueueWorker]) -> int:
    """The beat entries of these QueueWorkers; stale ones of their namespaces (earlier runs') removed, as
    the targets are. Other namespaces' entries are left alone: in a Redis shared with a cluster
    (`--redis-url`) they are the operator's."""
    if not any(qw.spec.schedules for qw in qws):
        return 0  # no beat runs, so stale entries cannot fire; the next run with schedules replaces them
    from queueworker.beat.schedules import BeatEntry, desired_entries, owner_prefix, sync_schedules

    by_namespace: dict[str, list[BeatEntry]] = {qw.namespace: [] for qw in qws}
    for qw in qws:
        by_namespace[qw.namespace].extend(desired_entries(qw))
    for namespace, entries in sorted(by_namespace.items()):
        sync_schedules(url, owner_prefix(namespace), entries)
    return sum(len(entries) for entries in by_namespace.values())


def run(opts: UpOptions) -> int:
    out = Output(live=opts.live)
    stop = Stop()
    stop.install()
    root = opts.workdir
    lock = workdir.Lock(root)
    try:
        lock.acquire()
    except workdir.WorkdirError as exc:
        out.info(f"qw up: {exc}", style="bold red")
        return 2
    environ = dict(os.environ)
    watchdog = Watchdog(root, environ)
    supervisor = Supervisor(watchdog, out.log)
    embedded: EmbeddedRedis | EmbeddedSentinel | None = None
    client: redis.Redis | None = None
    controller: Controller | None = None
    qws = [qw for qw, _ in opts.qws]
    try:
        if opts.redis_url:
            url, shown = opts.redis_url, redact(opts.redis_url)
        elif opts.broker == "sentinel":
            embedded = EmbeddedSentinel(root)
            sentinels = embedded.start(environ)
            for pid in embedded.pids:
                watchdog.add(pid, SERVICE_GRACE, stage=1)
            environ.update(sentinels.env)  # every child, and this process's own clients
            os.environ.update(sentinels.env)
            url, shown = sentinels.url, sentinels.display
        else:
            embedded = EmbeddedRedis(root)
            endpoint = embedded.start(environ)
            watchdog.add(embedded.pid, SERVICE_GRACE, stage=1)
            url, shown = endpoint.url, endpoint.display
        where = f"embedded, data in {workdir.redis_dir(root)}" if embedded else "yours"
        out.info(f"qw up: Redis {shown} ({where})")
        client = connect(url, timeout=5)
        client.ping()
        ctx = LocalContext(
            redis_url=url,
            routes_file=workdir.routes_file(root),
            workdir=root,
            cwd=Path.cwd(),
            roots=opts.roots,
            log_level=opts.log_level,
        )
        write_routes(ctx.routes_file, qws)
        managed = [Managed(qw, d, policy_config(qw, opts.scale_down_delay)) for qw, d in opts.qws]
        for m in managed:
            _announce(out, m)
        if os.geteuid() == 0:
            out.info("qw up: running as root; Celery advises against it for workers", style="yellow")
        controller = Controller(managed, supervisor, ctx, client, environ)
        controller.write_targets()
        if sync_beat(url, qws):
            argv, env = beat_command(ctx, environ)
            supervisor.start(Child("beat", argv, env, ctx.cwd, SERVICE_GRACE, kind="beat"))
        if opts.exporter_port:
            if port_free(opts.exporter_port):
                argv, env = exporter_command(ctx, opts.exporter_port, controller.queues, environ)
                supervisor.start(Child("exporter", argv, env, ctx.cwd, SERVICE_GRACE, kind="exporter"))
                out.info(f"qw up: metrics on http://127.0.0.1:{opts.exporter_port}/metrics")
            else:
                out.info(
                    f"qw up: port {opts.exporter_port} is in use: exporter not started "
                    f"(pass --exporter-port PORT, or 0 for none)",
                    style="yellow",
                )
        out.info(
            "qw up: running; Ctrl-C stops everything (`qw status`, `qw enqueue` work from another terminal)"
        )
        demo = (
            Demo(opts.bursts, url, ctx.routes_file, out, until_idle=opts.demo, interval=opts.interval)
            if opts.bursts or opts.demo
            else None
        )
        with out:
            _loop(
                opts,
                controller=controller,
                supervisor=supervisor,
                client=client,
                out=out,
                stop=stop,
                demo=demo,
                shown=shown,
                embedded=embedded,
            )
        _shutdown(supervisor, controller, out, stop)
        if demo is not None:
            demo.report()
        return 1 if stop.failed else 0
    except KeyboardInterrupt:
        _shutdown(supervisor, controller, out, stop)
        return 130
    except (EmbeddedRedisError, redis.RedisError, OSError) as exc:
        out.info(f"qw up: cannot start: {type(exc).__name__}: {exc}", style="bold red")
        _shutdown(supervisor, controller, out, stop)
        return 1
    finally:
        supervisor.kill_all()
        if client is not None:
            _forget_view(client)
            client.close()
        if embedded is not None:
            embedded.stop()
        watchdog.close()
        lock.release()


def _announce(out: Output, m: Managed) -> None:
    a = m.qw.spec.autoscaling
    if a.mode in ("keda", "hpa"):
        out.info(
            f"qw up: {m.qw.name}: autoscaling.mode {a.mode} needs Kubernetes; local mode runs it as builtin "
            f"({a.min_replicas}..{a.max_replicas} workers)",
            style="yellow",
        )
    elif a.mode == "off":
        out.info(f"qw up: {m.qw.name}: autoscaling off, {m.qw.spec.replicas} worker(s)")
    else:
        out.info(
            f"qw up: {m.qw.name}: builtin autoscaling, {m.config.min_replicas}..{m.config.max_replicas} "
            f"workers, target wait {a.target_wait_seconds:g}s, scale-down delay "
            f"{m.config.scale_down_delay_seconds:g}s"
        )
    from queueworker.local.commands import spec_env

    skipped = spec_env(m.qw)[1]
    if skipped:
        out.info(
            f"qw up: {m.qw.name}: spec.env {', '.join(skipped)} use valueFrom (Kubernetes only): not set",
            style="yellow",
        )


def _loop(
    opts: UpOptions,
    *,
    controller: Controller,
    supervisor: Supervisor,
    client: redis.Redis,
    out: Output,
    stop: Stop,
    demo: Demo | None,
    shown: str,
    embedded: EmbeddedRedis | EmbeddedSentinel | None,
) -> None:
    started = time.monotonic()
    next_tick = started
    while not stop.requested:
        now = time.monotonic()
        supervisor.poll()
        if now >= next_tick:
            next_tick = now + opts.interval
            rows = controller.tick(now)
            broker = "up" if controller.broker_up else "UNREACHABLE (holding replicas)"
            footer = f"Redis {shown}: {broker} · every {opts.interval:g}s · Ctrl-C to stop"
            if demo is not None:
                footer += " · " + demo.progress()
            out.update(rows, footer)
            _publish(client, rows, opts, shown)
            if demo is not None and demo.step(rows, controller.broker_up):
                stop.requested, stop.why = True, "demo finished"
        if isinstance(embedded, EmbeddedSentinel):
            for name, pid in embedded.revive():
                supervisor.watchdog.add(pid, SERVICE_GRACE, stage=1)
                out.info(
                    f"qw up: the embedded broker's {name} exited; started again (it rejoins as a replica)"
                )
        if embedded is not None and embedded.exited() is not None:
            out.info(
                f"qw up: the embedded Redis exited ({embedded.exited()}); see {embedded.dir / 'valkey.log'}",
                style="bold red",
            )
            stop.requested, stop.why, stop.failed = True, "the embedded Redis exited", True
        if opts.duration is not None and now - started >= opts.duration:
            stop.requested, stop.why = True, f"--duration {opts.duration:g}s reached"
        time.sleep(0.1)


def _publish(client: redis.Redis, rows: list[Row], opts: UpOptions, shown: str) -> None:
    with contextlib.suppress(redis.RedisError, OSError):
        publish(
            client,
            rows,
            {"pid": os.getpid(), "redis": shown, "interval": opts.interval},
            ttl=max(10.0, opts.interval * 5),
        )


def _forget_view(client: redis.Redis) -> None:
    from queueworker.local.view import VIEW_KEY

    with contextlib.suppress(redis.RedisError, OSError):
        client.delete(VIEW_KEY)


def _shutdown(supervisor: Supervisor, controller: Controller | None, out: Output, stop: Stop) -> None:
    workers = [c for c in supervisor.children.values() if c.kind == "worker"]
    grace = max((c.grace for c in workers), default=0.0)
    if not supervisor.children:
        return
    out.info(
        f"qw up: stopping ({stop.why or 'exit'}): {len(workers)} worker(s) get up to "
        f"{grace:g}s to finish (idle ones exit at once); Ctrl-C again to kill them now"
    )
    if controller is not None:
        controller.stop_all_workers(hurry=lambda: stop.hurry)
    supervisor.stop_all(("worker",), interrupted=lambda: stop.hurry)
    supervisor.stop_all(("beat", "exporter"), interrupted=lambda: stop.hurry)
    out.info("qw up: all processes stopped")
