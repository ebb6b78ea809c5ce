{{/*
Impossible or contradictory values fail the render with a message naming the value.
values.schema.json catches typos and wrong types; this catches combinations.
*/}}
{{- define "queueworker.validate" -}}
{{- $v := .Values -}}
{{- if $v.redis.enabled -}}
  {{- if or $v.externalRedis.url $v.externalRedis.existingSecret -}}
    {{- fail "externalRedis.url/externalRedis.existingSecret are set while redis.enabled=true: set redis.enabled=false to use the external Redis, or clear externalRedis" -}}
  {{- end -}}
{{- else -}}
  {{- if not (or $v.externalRedis.url $v.externalRedis.existingSecret) -}}
    {{- fail "redis.enabled=false needs a broker: set externalRedis.existingSecret (a Secret holding the Redis URL under externalRedis.existingSecretKey) or externalRedis.url" -}}
  {{- end -}}
  {{- if and $v.externalRedis.url $v.externalRedis.existingSecret -}}
    {{- fail "externalRedis.url and externalRedis.existingSecret are both set: keep one (existingSecret keeps the password out of the release)" -}}
  {{- end -}}
  {{- if $v.redis.auth.existingSecret -}}
    {{- fail "redis.auth.existingSecret is set while redis.enabled=false: put the external broker URL in externalRedis.existingSecret instead" -}}
  {{- end -}}
{{- end -}}
{{- if eq $v.operator.scope "namespaces" -}}
  {{- if not $v.operator.namespaces -}}
    {{- fail "operator.scope=namespaces needs operator.namespaces: list the namespaces whose QueueWorkers the operator manages" -}}
  {{- end -}}
{{- else if $v.operator.namespaces -}}
  {{- fail "operator.namespaces is set while operator.scope=cluster: set operator.scope=namespaces to watch only those namespaces, or clear operator.namespaces" -}}
{{- end -}}
{{- if $v.keda.enabled -}}
  {{- if not $v.exporter.enabled -}}
    {{- fail "keda.enabled=true needs exporter.enabled=true: KEDA scales on the exporter's queue metrics" -}}
  {{- end -}}
{{- end -}}
{{- if and $v.monitoring.prometheusRule.enabled (not $v.exporter.enabled) -}}
  {{- fail "monitoring.prometheusRule.enabled=true needs exporter.enabled=true: the alerts are on the exporter's queue metrics" -}}
{{- end -}}
{{- if eq (int $v.operator.metricsPort) (int $v.operator.healthPort) -}}
  {{- fail (printf "operator.metricsPort and operator.healthPort are both %v: they must differ" $v.operator.metricsPort) -}}
{{- end -}}
{{- range $path, $image := dict "operator.image" $v.operator.image "worker.image" $v.worker.image "redis.image" $v.redis.image -}}
  {{- if not (regexMatch "^([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*(:[0-9]{1,5})?/)?[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$" (toString $image.repository)) -}}
    {{- fail (printf "%s.repository: %q is not an image repository ([registry[:port]/]path, the path in lower case: alphanumerics separated by '.', '_', '__' or '-', components by '/')" $path (toString $image.repository)) -}}
  {{- end -}}
{{- end -}}
{{- /* Label and annotation maps: the schema admits their types and characters, this checks their form. */ -}}
{{- range $path, $map := dict "commonLabels" $v.commonLabels "operator.nodeSelector" $v.operator.nodeSelector "redis.nodeSelector" $v.redis.nodeSelector "exporter.nodeSelector" $v.exporter.nodeSelector "monitoring.serviceMonitor.labels" $v.monitoring.serviceMonitor.labels "monitoring.podMonitor.labels" $v.monitoring.podMonitor.labels "monitoring.prometheusRule.labels" $v.monitoring.prometheusRule.labels "monitoring.dashboards.labels" $v.monitoring.dashboards.labels -}}
  {{- include "queueworker.checkKeys" (dict "map" $map "path" $path "what" "label") -}}
{{- end -}}
{{- /* Every object's labels are the chart's own, then commonLabels, then (monitoring) the object's: no key twice. */ -}}
{{- $own := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" "app.kubernetes.io/version" "app.kubernetes.io/part-of" "app.kubernetes.io/managed-by" "helm.sh/chart" -}}
{{- range $key, $_ := $v.commonLabels -}}
  {{- if has $key $own -}}
    {{- fail (printf "commonLabels.%s: the chart sets label %q itself (selectors depend on it): remove it from commonLabels" $key $key) -}}
  {{- end -}}
{{- end -}}
{{- range $name, $object := $v.monitoring -}}
  {{- $path := printf "monitoring.%s.labels" $name -}}
  {{- range $key, $_ := (ternary $object.labels (dict) (and $object.enabled (kindIs "map" $object.labels))) -}}
    {{- if or (has $key $own) (hasKey (default (dict) $v.commonLabels) $key) -}}
      {{- fail (printf "%s.%s: label %q is already set by the chart or by commonLabels: set it in one place" $path $key $key) -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- range $path, $map := dict "operator.podAnnotations" $v.operator.podAnnotations "redis.podAnnotations" $v.redis.podAnnotations "exporter.podAnnotations" $v.exporter.podAnnotations "operator.serviceAccount.annotations" $v.operator.serviceAccount.annotations "monitoring.dashboards.annotations" $v.monitoring.dashboards.annotations -}}
  {{- include "queueworker.checkKeys" (dict "map" $map "path" $path "what" "annotation") -}}
{{- end -}}
{{- range $i, $env := $v.operator.extraEnv -}}
  {{- if and (hasKey $env "value") (hasKey $env "valueFrom") -}}
    {{- fail (printf "operator.extraEnv[%d] (%s): set value or valueFrom, not both" $i (toString $env.name)) -}}
  {{- end -}}
  {{- if and (hasKey $env "valueFrom") (ne (len (default (dict) $env.valueFrom)) 1) -}}
    {{- fail (printf "operator.extraEnv[%d] (%s): valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef" $i (toString $env.name)) -}}
  {{- end -}}
{{- end -}}
{{- range $path, $tolerations := dict "operator.tolerations" $v.operator.tolerations "redis.tolerations" $v.redis.tolerations "exporter.tolerations" $v.exporter.tolerations -}}
  {{- range $i, $t := $tolerations -}}
    {{- $at := printf "%s[%d]" $path $i -}}
    {{- if and (eq (toString $t.operator) "Exists") $t.value -}}
      {{- fail (printf "%s.value must be empty with operator Exists" $at) -}}
    {{- end -}}
    {{- if and (not $t.key) (ne (toString $t.operator) "Exists") -}}
      {{- fail (printf "%s.operator must be Exists when %s.key is empty (a toleration of every taint)" $at $at) -}}
    {{- end -}}
    {{- if and (hasKey $t "tolerationSeconds") (ne (toString $t.effect) "NoExecute") -}}
      {{- fail (printf "%s.tolerationSeconds needs %s.effect=NoExecute" $at $at) -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- range $path, $tree := dict "networkPolicy.redisClients" $v.networkPolicy.redisClients "networkPolicy.metricsFrom" $v.networkPolicy.metricsFrom "operator.affinity" $v.operator.affinity "redis.affinity" $v.redis.affinity "exporter.affinity" $v.exporter.affinity "operator.tolerations" $v.operator.tolerations "redis.tolerations" $v.redis.tolerations "exporter.tolerations" $v.exporter.tolerations -}}
  {{- include "queueworker.checkSelectors" (dict "node" $tree "path" $path) -}}
{{- end -}}
{{- end -}}

{{/*
Fails unless every key of .map is a qualified name ([DNS subdomain prefix/]name, the name at most 63
alphanumerics, '-', '_', '.', starting and ending with an alphanumeric), as Kubernetes requires of
label and annotation keys. Call with (dict "map" $m "path" "commonLabels" "what" "label").
*/}}
{{- define "queueworker.checkKeys" -}}
{{- $path := .path -}}
{{- $what := .what -}}
{{- range $key, $value := .map -}}
  {{- if not (include "queueworker.isQualifiedName" $key) -}}
    {{- fail (printf "%s.%s: %q is not a valid %s key ([prefix/]name: an optional DNS subdomain of at most 253 characters and '/', then a name of at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)" $path $key $key $what) -}}
  {{- end -}}
  {{- if and (eq $what "label") (not (and (kindIs "string" $value) (le (len $value) 63) (regexMatch "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$" $value))) -}}
    {{- fail (printf "%s.%s: %q is not a valid label value (at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric, or empty)" $path $key (toString $value)) -}}
  {{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when the argument is a qualified name (a label or annotation key), empty otherwise. */}}
{{- define "queueworker.isQualifiedName" -}}
{{- $parts := splitList "/" . -}}
{{- $name := last $parts -}}
{{- $nameOk := regexMatch "^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$" $name -}}
{{- if eq (len $parts) 1 -}}
  {{- if $nameOk }}true{{ end -}}
{{- else if eq (len $parts) 2 -}}
  {{- $prefix := first $parts -}}
  {{- if and $nameOk (le (len $prefix) 253) (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" $prefix) }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/*
Walks a values tree of Kubernetes selectors (NetworkPolicyPeers, Affinity, tolerations) and fails on a
matchLabels key, a matchExpressions/toleration key or a topologyKey that is not a label key, and on a
matchExpressions operator Exists/DoesNotExist with values or In/NotIn without. Call with
(dict "node" $tree "path" "networkPolicy.redisClients").
*/}}
{{- define "queueworker.checkSelectors" -}}
{{- $path := .path -}}
{{- if kindIs "map" .node -}}
  {{- range $key, $value := .node -}}
    {{- $here := printf "%s.%s" $path $key -}}
    {{- if and (eq $key "matchLabels") (kindIs "map" $value) -}}
      {{- include "queueworker.checkKeys" (dict "map" $value "path" $here "what" "label") -}}
    {{- else if and (has $key (list "key" "topologyKey")) (kindIs "string" $value) -}}
      {{- if and $value (not (include "queueworker.isQualifiedName" $value)) -}}
        {{- fail (printf "%s: %q is not a valid label key" $here $value) -}}
      {{- end -}}
    {{- else if and (has $key (list "matchExpressions" "matchFields")) (kindIs "slice" $value) -}}
      {{- range $i, $expression := $value -}}
        {{- $at := printf "%s[%d]" $here $i -}}
        {{- include "queueworker.checkSelectors" (dict "node" $expression "path" $at) -}}
        {{- if and (kindIs "map" $expression) (has $expression.operator (list "Exists" "DoesNotExist")) $expression.values -}}
          {{- fail (printf "%s.values must be empty with operator %s" $at $expression.operator) -}}
        {{- else if and (kindIs "map" $expression) (has $expression.operator (list "In" "NotIn")) (not $expression.values) -}}
          {{- fail (printf "%s.values must list at least one value with operator %s" $at $expression.operator) -}}
        {{- else if and (kindIs "map" $expression) (has $expression.operator (list "Gt" "Lt")) -}}
          {{- if not (and (eq (len (default (list) $expression.values)) 1) (regexMatch "^-?[0-9]{1,18}$" (toString (first (default (list "") $expression.values))))) -}}
            {{- fail (printf "%s.values must be one integer with operator %s" $at $expression.operator) -}}
          {{- end -}}
        {{- end -}}
      {{- end -}}
    {{- else -}}
      {{- include "queueworker.checkSelectors" (dict "node" $value "path" $here) -}}
    {{- end -}}
  {{- end -}}
{{- else if kindIs "slice" .node -}}
  {{- range $i, $item := .node -}}
    {{- include "queueworker.checkSelectors" (dict "node" $item "path" (printf "%s[%d]" $path $i)) -}}
  {{- end -}}
{{- end -}}
{{- end -}}
