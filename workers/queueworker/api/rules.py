"""The QueueWorker API's rules across fields, each once: the CEL expression and message the CRD carries
(x-kubernetes-validations, checked by the API server) and the Python check the spec model runs, which
names the field and the fix. api/fields.py attaches each rule to the object it constrains.
"""

from __future__ import annotations

from queueworker.api.checks import Checker, join
from queueworker.api.schema import Node, Rule
from queueworker.cron import cron_never_fires, never_fires_rule

# --- spec.autoscaling ------------------------------------------------------------------------------


def _min_at_most_max(check: Checker, node: Node) -> None:
    low, high = node.values.get("minReplicas"), node.values.get("maxReplicas")
    if low is not None and high is not None and low > high:  # compare only values valid on their own
        check.error(join(node.path, "minReplicas"), f"must be <= maxReplicas ({low} > {high})")


def _hpa_needs_one(check: Checker, node: Node) -> None:
    low = node.values.get("minReplicas")
    if node.values.get("mode") == "hpa" and low is not None and low < 1:
        check.error(
            join(node.path, "minReplicas"),
            "must be >= 1 when mode is hpa (a HorizontalPodAutoscaler cannot scale to zero; "
            "use mode builtin or keda to scale to zero)",
        )


MIN_AT_MOST_MAX = Rule(
    cel="self.minReplicas <= self.maxReplicas",
    message="spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas",
    field_path=".minReplicas",
    check=_min_at_most_max,
)
HPA_NEEDS_ONE = Rule(
    cel="self.mode != 'hpa' || self.minReplicas >= 1",
    message="spec.autoscaling.minReplicas must be >= 1 when mode is hpa (an HPA cannot scale to zero)",
    field_path=".minReplicas",
    check=_hpa_needs_one,
)

# --- spec --------------------------------------------------------------------------------------------


def _schedule_queue_is_a_queue(check: Checker, node: Node) -> None:
    queues = node.values.get("queues")  # absent when any queue is invalid: check against valid ones only
    if not queues:
        return
    for i, schedule in enumerate(node.values.get("schedules", ())):
        queue = schedule.get("queue")
        if queue is not None and queue not in queues:
            check.error(
                join(f"{node.path}.schedules[{i}]", "queue"),
                f"must be one of spec.queues ({', '.join(queues)}); got {queue!r}",
            )


SCHEDULE_QUEUE = Rule(
    cel="!has(self.schedules) || self.schedules.all(s, !has(s.queue) || s.queue in self.queues)",
    message="spec.schedules[].queue must be one of spec.queues",
    field_path=".schedules",
    check=_schedule_queue_is_a_queue,
)

# --- spec.schedules[] --------------------------------------------------------------------------------


def _one_of_cron_every(check: Checker, node: Node) -> None:
    if ("cron" in node.raw) == ("every" in node.raw):
        check.error(node.path, "set exactly one of cron (e.g. '0 7 * * *') or every (e.g. '30s', '1h30m')")


def _cron_fires(check: Checker, node: Node) -> None:
    cron = node.values.get("cron")
    if cron is not None and cron_never_fires(cron):
        check.error(
            join(node.path, "cron"),
            f"never fires: its days of month occur in none of its months; got {cron!r}",
        )


def _every_positive(check: Checker, node: Node) -> None:
    seconds = node.values.get("every")
    if seconds is not None and seconds <= 0:
        check.error(join(node.path, "every"), f"must be greater than zero, got {node.raw['every']!r}")


ONE_OF_CRON_EVERY = Rule(
    cel="has(self.cron) != has(self.every)",
    message="spec.schedules[] sets exactly one of cron or every",
    check=_one_of_cron_every,
)
CRON_FIRES = Rule(
    cel=never_fires_rule(),
    message="spec.schedules[].cron never fires (those days of month occur in none of its months)",
    field_path=".cron",
    check=_cron_fires,
)
EVERY_POSITIVE = Rule(
    cel="!has(self.every) || self.every.matches('[1-9]')",
    message="spec.schedules[].every must be greater than zero",
    field_path=".every",
    check=_every_positive,
)

# --- spec.env[] --------------------------------------------------------------------------------------


def _value_or_value_from(check: Checker, node: Node) -> None:
    if "value" in node.raw and "valueFrom" in node.raw:
        check.error(node.path, "set value or valueFrom, not both")


ENV_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")


def _one_source(check: Checker, node: Node) -> None:
    if len(node.raw) != 1:
        check.error(node.path, f"set exactly one of {', '.join(ENV_SOURCES)}")


VALUE_OR_VALUE_FROM = Rule(
    cel="!has(self.value) || !has(self.valueFrom)",
    message="spec.env[] sets value or valueFrom, not both",
    check=_value_or_value_from,
)
ONE_SOURCE = Rule(
    cel=" + ".join(f"(has(self.{source}) ? 1 : 0)" for source in ENV_SOURCES) + " == 1",
    message="spec.env[].valueFrom needs exactly one of " + ", ".join(ENV_SOURCES),
    check=_one_source,
)

# --- spec.tolerations[] ------------------------------------------------------------------------------


def _exists_has_no_value(check: Checker, node: Node) -> None:
    if node.values.get("operator") == "Exists" and node.raw.get("value"):
        check.error(join(node.path, "value"), "must be empty when operator is Exists")


def _no_key_means_exists(check: Checker, node: Node) -> None:
    if not node.raw.get("key") and node.values.get("operator") != "Exists":
        check.error(join(node.path, "operator"), "must be Exists when key is empty (to tolerate every taint)")


def _seconds_need_no_execute(check: Checker, node: Node) -> None:
    if "tolerationSeconds" in node.raw and node.values.get("effect") != "NoExecute":
        check.error(join(node.path, "tolerationSeconds"), "may only be set when effect is NoExecute")


EXISTS_HAS_NO_VALUE = Rule(
    cel="!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
    message="spec.tolerations[].value must be empty when operator is Exists",
    field_path=".value",
    check=_exists_has_no_value,
)
NO_KEY_MEANS_EXISTS = Rule(
    cel="(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
    message="spec.tolerations[].operator must be Exists when key is empty",
    field_path=".operator",
    check=_no_key_means_exists,
)
SECONDS_NEED_NO_EXECUTE = Rule(
    cel="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
    message="spec.tolerations[].tolerationSeconds may only be set when effect is NoExecute",
    field_path=".tolerationSeconds",
    check=_seconds_need_no_execute,
)
