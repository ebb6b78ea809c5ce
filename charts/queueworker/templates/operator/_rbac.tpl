{{/*
The operator's permissions. Each rule is here because the operator (kube.py) or kopf under it uses it;
tests/chart/test_rbac.py lists every rule with its reason and fails on any other. Writes are server-side
apply (verb patch, and create when it creates the object), merge patches of status and annotations,
and delete: nothing PUTs. No Secret access at all: worker pods get the broker URL by secretKeyRef,
which the kubelet resolves, and the operator's own URL comes from its env.
*/}}

{{/* Rules on namespaced resources: a ClusterRole (scope=cluster) or a Role per watched namespace. */}}
{{- define "queueworker.operatorNamespacedRules" -}}
# QueueWorkers: kopf watches them and patches finalizers, its progress annotations and status.
- apiGroups: ["queueworker.dev"]
  resources: ["queueworkers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["queueworker.dev"]
  resources: ["queueworkers/status"]
  verbs: ["get", "patch"]
# Children built for each QueueWorker: worker and beat Deployments, PDBs, the routes ConfigMap, HPAs
# (applied server-side: patch, and create when new; watched: the operator's cache of what it applied).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The builtin autoscaler applies worker replicas through the Deployment's scale subresource.
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# ScaledObjects: created only when KEDA is installed (keda.enabled); deleted always, because the first
# apply of a QueueWorker in a mode removes the autoscaler of the other modes (403 there would fail it).
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  {{- if .Values.keda.enabled }}
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
  {{- else }}
  verbs: ["delete"]
  {{- end }}
# Worker pods: listed to find idle ones, patched with controller.kubernetes.io/pod-deletion-cost.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
# Events on QueueWorkers (kopf posts core/v1 Events; invalid specs are reported there).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Rules on cluster-scoped resources, needed in both scopes. */}}
{{- define "queueworker.operatorClusterRules" -}}
# kopf scans CustomResourceDefinitions to discover the QueueWorker resource and follow its changes.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if eq .Values.operator.scope "namespaces" }}
# kopf lists and watches Namespaces when it serves a namespace list (not when cluster-wide).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end -}}
