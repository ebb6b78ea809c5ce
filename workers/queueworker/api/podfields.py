"""The fields of the QueueWorker table (api/fields.py) that carry Kubernetes' own types: the worker
container's resources and env, the pod's tolerations and affinity. The spec model reads them with
api/pod.py, which takes its bounds, enums and rules from these fields."""

from __future__ import annotations

from queueworker.api import pod, rules
from queueworker.api.checks import ENV_NAME, INT32_MAX, QUANTITY
from queueworker.api.schema import ARRAY, BOOLEAN, INTEGER, OBJECT, STRING, Field
from queueworker.api.schema import QUANTITY as QUANTITY_TYPE

ENV_NAME_WHAT = "an environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)"


def _quantity(name: str = "", description: str = "") -> Field:
    limit = pod.QUANTITY_MAX_LENGTH
    return Field(name, QUANTITY_TYPE, description, minimum=0, max_length=limit, pattern=QUANTITY.pattern)


def _key_ref(kind: str) -> Field:
    return Field(
        f"{kind[0].lower()}{kind[1:]}KeyRef",
        OBJECT,
        f"A key of a {kind} in the QueueWorker's namespace.",
        fields=(
            Field("name", STRING, "Name of the object.", min_length=1, max_length=253),
            Field("key", STRING, "The key to read.", required=True, min_length=1, max_length=253),
            Field("optional", BOOLEAN, "Whether a missing object or key is allowed."),
        ),
    )


RESOURCES = Field(
    "resources",
    OBJECT,
    "CPU and memory of each worker container (Kubernetes ResourceRequirements).",
    parse=pod.parse_resources,
    fields=(
        Field(
            "limits",
            OBJECT,
            "Most compute resources allowed, e.g. `{cpu: '1', memory: 1Gi}`.",
            max_properties=16,
            values=_quantity(),
        ),
        Field(
            "requests",
            OBJECT,
            "Compute resources reserved, e.g. `{cpu: 500m, memory: 256Mi}`.",
            max_properties=16,
            values=_quantity(),
        ),
    ),
)

ENV = Field(
    "env",
    ARRAY,
    "Extra environment variables of the worker container (Kubernetes EnvVar).",
    max_items=128,
    list_type="map",
    map_keys=("name",),
    parse=pod.parse_env,
    items=Field(
        "",
        OBJECT,
        rules=(rules.VALUE_OR_VALUE_FROM,),
        fields=(
            Field(
                "name",
                STRING,
                "Variable name.",
                required=True,
                min_length=1,
                max_length=256,
                pattern=ENV_NAME.pattern,
                what=ENV_NAME_WHAT,
            ),
            Field("value", STRING, "Variable value."),
            Field(
                "valueFrom",
                OBJECT,
                "Where the value comes from instead; exactly one source.",
                rules=(rules.ONE_SOURCE,),
                fields=(
                    _key_ref("Secret"),
                    _key_ref("ConfigMap"),
                    Field(
                        "fieldRef",
                        OBJECT,
                        "A field of the pod, e.g. `metadata.name`.",
                        fields=(
                            Field(
                                "apiVersion",
                                STRING,
                                "Schema version of fieldPath (default v1).",
                                min_length=1,
                                max_length=253,
                            ),
                            Field(
                                "fieldPath",
                                STRING,
                                "Path of the field.",
                                required=True,
                                min_length=1,
                                max_length=253,
                            ),
                        ),
                    ),
                    Field(
                        "resourceFieldRef",
                        OBJECT,
                        "A resource limit or request of the container, e.g. `limits.memory`.",
                        fields=(
                            Field("containerName", STRING, "Container name.", min_length=1, max_length=253),
                            Field(
                                "resource",
                                STRING,
                                "The resource to read.",
                                required=True,
                                min_length=1,
                                max_length=253,
                            ),
                            _quantity("divisor", "Unit of the exposed value, e.g. `1Mi`."),
                        ),
                    ),
                ),
            ),
        ),
    ),
)

TOLERATIONS = Field(
    "tolerations",
    ARRAY,
    "Taints the worker pods tolerate (Kubernetes Toleration).",
    max_items=32,
    list_type="atomic",
    parse=pod.parse_tolerations,
    items=Field(
        "",
        OBJECT,
        rules=(rules.EXISTS_HAS_NO_VALUE, rules.NO_KEY_MEANS_EXISTS, rules.SECONDS_NEED_NO_EXECUTE),
        fields=(
            Field(
                "key", STRING, "Taint key; empty with operator Exists matches every taint.", max_length=317
            ),
            Field(
                "operator",
                STRING,
                "Equal (the default) compares value; Exists matches any value.",
                enum=("Exists", "Equal"),
            ),
            Field("value", STRING, "Taint value to match.", max_length=63),
            Field(
                "effect",
                STRING,
                "Taint effect to match; empty matches all.",
                enum=("NoSchedule", "PreferNoSchedule", "NoExecute"),
            ),
            Field(
                "tolerationSeconds",
                INTEGER,
                "With NoExecute, how long the pod stays after the taint appears.",
                format="int64",
                minimum=0,
                maximum=INT32_MAX,
            ),
        ),
    ),
)

AFFINITY = Field(
    "affinity",
    OBJECT,
    "Scheduling constraints of the worker pods (Kubernetes Affinity).",
    parse=pod.parse_affinity,
    fields=(
        Field("nodeAffinity", OBJECT, "Kubernetes NodeAffinity.", preserve_unknown=True),
        Field("podAffinity", OBJECT, "Kubernetes PodAffinity.", preserve_unknown=True),
        Field(
            "podAntiAffinity",
            OBJECT,
            "Kubernetes PodAntiAffinity, e.g. to spread workers over nodes.",
            preserve_unknown=True,
        ),
    ),
)
