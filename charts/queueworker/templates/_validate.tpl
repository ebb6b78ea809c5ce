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
{{- end -}}
