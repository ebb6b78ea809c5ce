"""The per-namespace routes ConfigMap: the routes document of every QueueWorker in the namespace."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from queueworker.api.routes import routes_document
from queueworker.api.spec import QueueWorker
from queueworker.builders.common import ROUTES_KEY, metadata, shared_refs
from queueworker.builders.labels import labels
from queueworker.settings import Settings


def routes_configmap(qws: Sequence[QueueWorker], settings: Settings) -> dict[str, Any] | None:
    """The ConfigMap for one namespace's QueueWorkers (all in `qws`), or None when there are none.
    Owned (non-controller) by each of them, so it goes away with the last one."""
    if not qws:
        return None
    namespaces = {qw.namespace for qw in qws}
    if len(namespaces) != 1:
        raise ValueError(f"routes_configmap takes one namespace's QueueWorkers, got {sorted(namespaces)}")
    document = routes_document(qws)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            settings.routes_configmap,
            qws[0].namespace,
            labels(settings.routes_configmap, "routes"),
            shared_refs(qws),
        ),
        "data": {ROUTES_KEY: json.dumps(document, indent=2) + "\n"},
    }
