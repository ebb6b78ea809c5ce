{{/*
Names, labels and shared fragments. One label helper: queueworker.labels; selectors use only
name + instance + component (queueworker.selectorLabels), which never change across upgrades.
*/}}

{{- define "queueworker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "queueworker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "queueworker.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "queueworker.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "queueworker.labels" -}}
{{ include "queueworker.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: queueworker
app.kubernetes.io/managed-by: {{ .ctx.Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The immutable subset used in selectors. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "queueworker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "queueworker.name" .ctx | quote }}
app.kubernetes.io/instance: {{ .ctx.Release.Name | quote }}
{{- if .component }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end }}
{{- end -}}

{{/* repository:tag[@digest], unquoted (quote it where it is inserted); call with
(dict "image" .Values.x.image "ctx" $ "path" "x.image"). */}}
{{- define "queueworker.image" -}}
{{- $repository := required (printf "%s.repository is required" .path) .image.repository -}}
{{- if and .ctx.Values.imageRegistry (has .path (list "operator.image" "worker.image")) -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .ctx.Values.imageRegistry) $repository -}}
{{- end -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" $repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "queueworker.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "queueworker.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create=false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "queueworker.redisFullname" -}}
{{- printf "%s-redis" (include "queueworker.fullname" .) -}}
{{- end -}}

{{/* Host of the chart's Redis, resolvable from every namespace. */}}
{{- define "queueworker.redisHost" -}}
{{- printf "%s.%s.svc" (include "queueworker.redisFullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Does the chart create the broker Secret (keys url, and password when it runs Redis)? */}}
{{- define "queueworker.brokerSecretManaged" -}}
{{- if .Values.redis.enabled -}}
{{- if not .Values.redis.auth.existingSecret }}true{{ end -}}
{{- else if and .Values.externalRedis.url (not .Values.externalRedis.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the broker URL (also what worker pods read in their namespace). */}}
{{- define "queueworker.brokerSecretName" -}}
{{- if include "queueworker.brokerSecretManaged" . -}}
{{- .Values.broker.secretName -}}
{{- else if .Values.redis.enabled -}}
{{- .Values.redis.auth.existingSecret -}}
{{- else -}}
{{- .Values.externalRedis.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "queueworker.brokerSecretKey" -}}
{{- if include "queueworker.brokerSecretManaged" . -}}
url
{{- else if .Values.redis.enabled -}}
{{- .Values.redis.auth.existingSecretUrlKey -}}
{{- else -}}
{{- .Values.externalRedis.existingSecretKey -}}
{{- end -}}
{{- end -}}

{{/* Namespaces QueueWorkers may live in, for the broker Secret copies and NetworkPolicies (namespaces scope). */}}
{{- define "queueworker.watchedNamespaces" -}}
{{- if eq .Values.operator.scope "namespaces" -}}
{{- toJson .Values.operator.namespaces -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, plus a read-only root filesystem. */}}
{{- define "queueworker.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "queueworker.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Common pod placement fields; call with (dict "pod" .Values.x "ctx" $). */}}
{{- define "queueworker.podPlacement" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
checkov suppressions shared by the chart's workloads, each with its reason (checkov reads any
annotation starting with checkov.io/skip; the number only keeps the keys apart).
*/}}
{{- define "queueworker.checkovImageSkips" -}}
checkov.io/skip1: "CKV_K8S_43=images are pinned by tag per chart release; set <component>.image.digest to pin by digest"
checkov.io/skip2: "CKV_K8S_15=tags are immutable per release, so IfNotPresent is the default (kind-loaded images need it); set pullPolicy Always or a digest where tags may move"
{{- end -}}

{{/* Does the chart's Redis serve TLS (and its clients verify it with the CA in the broker Secret)? */}}
{{- define "queueworker.redisTls" -}}
{{- if and .Values.redis.enabled .Values.redis.tls.enabled }}true{{ end -}}
{{- end -}}

{{/* The Secret holding Redis's tls.crt, tls.key and ca.crt. */}}
{{- define "queueworker.redisTlsSecret" -}}
{{- .Values.redis.tls.existingSecret | default (printf "%s-tls" (include "queueworker.redisFullname" .)) -}}
{{- end -}}

{{/* Where clients find the broker's CA (key ca.crt of the broker Secret, mounted optionally). */}}
{{- define "queueworker.brokerCaDir" -}}/etc/queueworker/broker-tls{{- end -}}

{{/* The volume and mount of the broker's CA for a client pod (the Secret's ca.crt; optional, so a
plaintext broker needs no key). Usage: include "queueworker.brokerCaVolume" . / "queueworker.brokerCaMount". */}}
{{- define "queueworker.brokerCaVolume" -}}
- name: broker-tls
  secret:
    secretName: {{ include "queueworker.brokerSecretName" . | quote }}
    defaultMode: 0440
    optional: true
    items:
      - key: ca.crt
        path: ca.crt
{{- end -}}
{{- define "queueworker.brokerCaMount" -}}
- name: broker-tls
  mountPath: {{ include "queueworker.brokerCaDir" . | quote }}
  readOnly: true
{{- end -}}

{{/* Redis's TLS material as JSON {crt, key, ca}: from redis.tls.existingSecret or the kept Secret (lookup),
else made once per render (memoized in .Values, so the TLS Secret and the broker Secret's ca.crt agree). */}}
{{- define "queueworker.redisTlsMaterial" -}}
{{- if not (hasKey .Values "__redisTlsMaterial") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "queueworker.redisTlsSecret" .) -}}
{{- $m := dict "crt" "" "key" "" "ca" "" -}}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") -}}
{{- $_ := set $m "crt" (index $existing.data "tls.crt" | default "" | b64dec) -}}
{{- $_ := set $m "key" (index $existing.data "tls.key" | default "" | b64dec) -}}
{{- $_ := set $m "ca" (index $existing.data "ca.crt" | b64dec) -}}
{{- else if not .Values.redis.tls.existingSecret -}}
{{- $full := include "queueworker.redisFullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $sentinel := include "queueworker.sentinelFullname" . -}}
{{- $names := list $full (printf "%s.%s" $full $ns) (printf "%s.%s.svc" $full $ns) (printf "%s.%s.svc.cluster.local" $full $ns) (printf "*.%s-headless.%s.svc" $full $ns) (printf "*.%s-headless.%s.svc.cluster.local" $full $ns) "localhost" -}}
{{- $names = concat $names (list $sentinel (printf "%s.%s.svc" $sentinel $ns) (printf "%s.%s.svc.cluster.local" $sentinel $ns) (printf "*.%s-headless.%s.svc" $sentinel $ns) (printf "*.%s-headless.%s.svc.cluster.local" $sentinel $ns)) -}}
{{- $authority := genCA (printf "%s CA" $full) 3650 -}}
{{- $cert := genSignedCert $full (list "127.0.0.1") $names 3650 $authority -}}
{{- $_ := set $m "crt" $cert.Cert -}}
{{- $_ := set $m "key" $cert.Key -}}
{{- $_ := set $m "ca" $authority.Cert -}}
{{- end -}}
{{- $_ := set .Values "__redisTlsMaterial" $m -}}
{{- end -}}
{{- toJson (get .Values "__redisTlsMaterial") -}}
{{- end -}}

{{/* Does the chart run Redis in sentinel mode? */}}
{{- define "queueworker.redisSentinel" -}}
{{- if and .Values.redis.enabled (eq .Values.redis.mode "sentinel") }}true{{ end -}}
{{- end -}}

{{- define "queueworker.sentinelFullname" -}}
{{- printf "%s-sentinel" (include "queueworker.redisFullname" .) -}}
{{- end -}}

{{/* Host of the sentinels' Service, resolvable from every namespace. */}}
{{- define "queueworker.sentinelHost" -}}
{{- printf "%s.%s.svc" (include "queueworker.sentinelFullname" .) .Release.Namespace -}}
{{- end -}}

{{/* redis-cli's TLS flags inside the chart's Redis and sentinel pods. */}}
{{- define "queueworker.redisCliTls" -}}
{{- if include "queueworker.redisTls" . }}--tls --cacert /etc/redis/tls/ca.crt{{ end -}}
{{- end -}}

{{/* The sentinel variables of a broker client, from the broker Secret (optional keys). */}}
{{- define "queueworker.sentinelEnv" -}}
- name: QUEUEWORKER_SENTINEL_MASTER
  valueFrom:
    secretKeyRef:
      name: {{ include "queueworker.brokerSecretName" . | quote }}
      key: sentinel-master
      optional: true
- name: QUEUEWORKER_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "queueworker.brokerSecretName" . | quote }}
      key: sentinel-password
      optional: true
{{- end -}}
