"""How `qw status` and `qw enqueue` find Redis: --redis-url, else the embedded Redis of the `qw up`
running with the same workdir (--state-dir)."""

from __future__ import annotations

from pathlib import Path

from queueworker.local import workdir


class NotRunning(RuntimeError):
    pass


def find_redis(redis_url: str | None, directory: str | None) -> tuple[str, str, Path]:
    """(url, url for people, workdir); `directory` is --state-dir."""
    root = workdir.resolve(directory)
    if redis_url:
        from queueworker.contract import redact

        return redis_url, redact(redis_url), root
    endpoint = workdir.read_endpoint(root)
    if endpoint is None:
        raise NotRunning(
            f"no `qw up` with an embedded Redis is running with state directory {root}; "
            f"run this from the directory where `qw up` runs, or pass --state-dir or --redis-url"
        )
    return endpoint.url, endpoint.display, root
