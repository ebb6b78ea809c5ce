"""Properties of the spec model on generated input: it never fails with anything but SpecError, its
error paths name real fields, it agrees with the CRD on near-valid specs, and every cron expression the
CRD pattern admits is one croniter and Celery's crontab can run."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queueworker.api.checks import join
from queueworker.api.spec import MODES, POOLS, SPEC_FIELDS, SpecError, parse_manifest, parse_spec
from queueworker.cron import CRON, cron_never_fires, crontab_kwargs

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from([*SPEC_FIELDS, "concurency", "queue", "x"])
nested_names = st.sampled_from(
    ["mode", "minReplicas", "maxReplicas", "targetWaitSeconds", "gracePeriodSeconds", "limits", "requests",
     "name", "task", "cron", "every", "queue", "enabled", "args", "kwargs", "value", "valueFrom", "key",
     "operator", "effect", "nodeAffinity", "cpu"]
)  # fmt: skip
shaped = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nested_names, inner, max_size=4),
    max_leaves=15,
)
specs = st.dictionaries(field_names, shaped | json_values, max_size=8)
TOP = ("apiVersion", "kind", "metadata", "spec", "status")


@FAST
@given(
    st.sampled_from(SPEC_FIELDS),
    st.sampled_from(["limits", "requests", "valueFrom", "secretKeyRef", "nodeAffinity", "autoscaling"]),
    shaped,
)
def test_any_value_in_any_field_only_raises_spec_error(field: str, inner: str, value: Any) -> None:
    """Each field, given arbitrary values directly and one level down, fails only with SpecError."""
    for raw in (value, [value], {inner: value}, [{"name": "a", inner: value, "task": "t", "every": "1m"}],
                {inner: {"cpu": value, "key": value}}):  # fmt: skip
        try:
            parse_spec({"app": "shop.tasks", "queues": ["emails"], field: raw})
        except SpecError as exc:
            assert all(e.path.startswith(f"spec.{field}") for e in exc.errors), exc.errors


@FAST
@given(specs)
def test_parse_spec_only_raises_spec_error(raw: dict[str, Any]) -> None:
    try:
        parse_spec(raw)
    except SpecError as exc:
        assert exc.errors
        assert all(e.path == "spec" or e.path.startswith(("spec.", "spec[")) for e in exc.errors)


@FAST
@given(
    st.dictionaries(st.sampled_from([*TOP, "specs"]), shaped | json_values | specs, max_size=5) | json_values
)
def test_parse_manifest_only_raises_spec_error(raw: Any) -> None:
    try:
        parse_manifest(raw)
    except SpecError as exc:
        assert exc.errors
        allowed = {"spec", "metadata", "apiVersion", "kind"}
        if isinstance(raw, dict):
            allowed |= {join("", k) for k in raw if isinstance(k, str) and k not in TOP}
        for error in exc.errors:
            assert error.path in allowed or error.path.split(".")[0].split("[")[0] in allowed, error


# -- agreement with the CRD on near-valid specs ------------------------------------------------------

ints = st.integers(-2, 1100) | st.sampled_from([2.0, 2.5, True, "3", 2**31])
names = st.sampled_from(["a", "b", "digest", "Bad_Name", "", "x" * 64, 3])
queues_ = st.sampled_from(["emails", "bulk", "-bad", "a.b:c", "", 7])
crons = st.sampled_from(["0 0 30 2 *", "0 0 31 4,jun *", "0 0 30 2,3 *", "0 7 * * *",
                          "*/5 * * * mon-fri", "60 * * * *", "* * * *", "@daily", "0 0 1 jan 7",
                         "0 0 0 * *", "1-5/2 * * * *", "", 5])  # fmt: skip
everys = st.sampled_from(["30s", "1h30m", "0s", "0m0s", "1.5h", "30", 30, "1d", "", "5m1h"])
quantities = st.sampled_from(["500m", "1Gi", "2", 2, 0.5, -1, "1 GB", "1e3", ".5", 3.0, True, "-1"])
maybe = st.booleans()


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


schedule = optional(
    name=names, task=st.sampled_from(["t.a", "has space", ""]), cron=crons, every=everys, queue=queues_,
    enabled=st.sampled_from([True, False, "yes", None]), args=st.sampled_from([[1, "a"], {"a": 1}, None]),
    kwargs=st.sampled_from([{"a": [1]}, [1], None]),
)  # fmt: skip
toleration = optional(
    key=st.sampled_from(["k", "", "a/b"]), operator=st.sampled_from(["Exists", "Equal", "In"]),
    value=st.sampled_from(["v", "", 1]), effect=st.sampled_from(["NoSchedule", "NoExecute", "x"]),
    tolerationSeconds=st.sampled_from([0, 5, -1, "5"]),
)  # fmt: skip
key_ref = optional(
    name=st.sampled_from(["s", ""]), key=st.sampled_from(["k", ""]), optional=st.sampled_from([True, "no"])
)
env = optional(
    name=st.sampled_from(["A", "B", "1X", "", 3]), value=st.sampled_from(["v", "", 3]),
    valueFrom=optional(secretKeyRef=key_ref, configMapKeyRef=key_ref,
                       fieldRef=optional(fieldPath=st.sampled_from(["metadata.name", ""]))),
)  # fmt: skip
near_valid = optional(
    concurrency=ints,
    pool=st.sampled_from([*POOLS, "fork", 1]),
    prefetchMultiplier=ints,
    maxTasksPerChild=ints,
    replicas=ints,
    image=st.sampled_from(["img:1", "has space", ""]),
    routes=st.lists(st.sampled_from(["a.*", "b", "has space", ""]), max_size=3),
    queues=st.lists(queues_, max_size=4),
    autoscaling=optional(
        mode=st.sampled_from([*MODES, "auto", False]),
        minReplicas=ints,
        maxReplicas=ints,
        targetWaitSeconds=st.sampled_from([0, 0.5, 30, -1, 90000, "30s"]),
        scaleDownDelaySeconds=ints,
    ),
    shutdown=optional(gracePeriodSeconds=ints),
    resources=optional(
        limits=st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
        requests=st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
    ),
    env=st.lists(env, max_size=3),
    nodeSelector=st.dictionaries(
        st.sampled_from(["disk", "zone"]), st.sampled_from(["ssd", 1, "x" * 64]), max_size=2
    ),
    tolerations=st.lists(toleration, max_size=3),
    affinity=optional(nodeAffinity=st.sampled_from([{}, {"a": 1}, []]), podAffinity=st.just({})),
    serviceAccountName=st.sampled_from(["worker", "Bad_SA", ""]),
    schedules=st.lists(schedule, max_size=3),
)


FULL = (range(60), range(24), range(1, 32), range(1, 13), range(7))


@settings(max_examples=150, deadline=None)
@given(st.from_regex(CRON, fullmatch=True))
def test_every_cron_the_pattern_admits_runs_in_croniter_and_celery(expr: str) -> None:
    """Every expression the CRD pattern admits runs in croniter, and Celery's crontab parses what
    crontab_kwargs makes of it to the same sets of times."""
    assert croniter.is_valid(expr)
    if cron_never_fires(expr):
        return
    tab = crontab(**crontab_kwargs(expr))
    got = [
        set(tab.minute),
        set(tab.hour),
        set(tab.day_of_month),
        set(tab.month_of_year),
        set(tab.day_of_week),
    ]
    want = [
        set(FULL[i]) if "*" in field else {int(v) % 7 if i == 4 else int(v) for v in field}
        for i, field in enumerate(croniter(expr).expanded)
    ]
    assert got == want
