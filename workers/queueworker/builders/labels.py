"""The one label helper: every object QueueWorker creates is labelled and named through here.

Labels (docs/internals.md "Labels"): `app.kubernetes.io/{name,instance,component,managed-by}` plus
`queueworker.dev/queue`. Selectors use only the immutable subset (name, instance, component).
Any value that is too long, or has characters Kubernetes does not allow, is shortened with a stable
hash suffix, so every valid QueueWorker name (up to 253 characters) and queue name yields valid
object names and label values, and distinct inputs stay distinct.
"""

from __future__ import annotations

import hashlib
import re

from queueworker.api import checks
from queueworker.api.checks import DNS_LABEL, MAX_DNS_LABEL

NAME = "queueworker"
MANAGED_BY = "queueworker-operator"

NAME_KEY = "app.kubernetes.io/name"
INSTANCE_KEY = "app.kubernetes.io/instance"
COMPONENT_KEY = "app.kubernetes.io/component"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
QUEUE_KEY = "queueworker.dev/queue"

COMPONENTS = ("worker", "beat", "routes")

#: Longest DNS label (RFC 1123): names that pods and their hostnames derive from, and label values.
MAX_LABEL = MAX_DNS_LABEL
HASH_LEN = 8

is_dns_label = checks.is_dns_label  # the one definition (api/checks.py), named here with the others

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def short_hash(text: str, length: int = HASH_LEN) -> str:
    """A stable lowercase hex digest prefix of `text`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def is_label_value(text: str) -> bool:
    return len(text) <= MAX_LABEL and bool(_LABEL_VALUE.match(text))


def safe_name(base: str, suffix: str = "", max_len: int = MAX_LABEL) -> str:
    """`<base>-<suffix>` as a DNS label of at most `max_len` characters.

    Returned unchanged when it already is one; otherwise the base is lowercased, every character
    outside [a-z0-9-] becomes '-', it is cut to fit, and a hash of the original `<base>-<suffix>` is
    inserted before the suffix: `<cut base>-<hash>-<suffix>`.
    """
    if max_len < HASH_LEN + len(suffix) + 1:
        raise ValueError(f"max_len {max_len} leaves no room for the hash and suffix {suffix!r}")
    candidate = f"{base}-{suffix}" if suffix else base
    if len(candidate) <= max_len and DNS_LABEL.match(candidate):
        return candidate
    digest = short_hash(candidate)
    tail = f"{digest}-{suffix}" if suffix else digest
    room = max_len - len(tail) - 1
    cleaned = re.sub(r"[^a-z0-9-]", "-", base.lower())[:room].strip("-")
    return f"{cleaned}-{tail}" if cleaned else tail


def label_value(value: str) -> str:
    """`value` as a valid label value: unchanged when it is one, else cleaned and hash-suffixed."""
    if is_label_value(value):
        return value
    digest = short_hash(value)
    room = MAX_LABEL - HASH_LEN - 1
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:room]
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    return f"{cleaned}-{digest}" if cleaned else digest


def selector(instance: str, component: str) -> dict[str, str]:
    """The immutable label subset a Deployment selects its pods by."""
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {', '.join(COMPONENTS)}, not {component!r}")
    return {
        NAME_KEY: NAME,
        INSTANCE_KEY: label_value(instance),
        COMPONENT_KEY: component,
    }


def labels(instance: str, component: str, queue: str | None = None) -> dict[str, str]:
    """Every label of an object (and its pods): the selector subset, managed-by and the queue."""
    result = selector(instance, component)
    result[MANAGED_BY_KEY] = MANAGED_BY
    if queue is not None:
        result[QUEUE_KEY] = label_value(queue)
    return result
