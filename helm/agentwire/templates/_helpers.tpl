{{/* vim: set filetype=mustache: */}}

{{- define "agentwire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "agentwire.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "agentwire.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The services this chart deploys, in a fixed order. */}}
{{- define "agentwire.components" -}}
ingest edge runner processor
{{- end -}}

{{/* Services that serve the public HTTP API (the others are Kafka workers with an ops port). */}}
{{- define "agentwire.isHttp" -}}
{{- if has . (list "ingest" "edge") -}}true{{- end -}}
{{- end -}}

{{- define "agentwire.labels" -}}
helm.sh/chart: {{ include "agentwire.chart" . }}
{{ include "agentwire.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentwire
{{- end -}}

{{- define "agentwire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentwire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one service's resources. Call with (dict "root" $ "component" "edge"). */}}
{{- define "agentwire.componentLabels" -}}
{{ include "agentwire.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "agentwire.componentSelectorLabels" -}}
{{ include "agentwire.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Name of one service's resources: <fullname>-<component>. */}}
{{- define "agentwire.componentName" -}}
{{- printf "%s-%s" (include "agentwire.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentwire.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agentwire.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* <registry>/<repository>/agentwire-<component>:<tag>. Call with (dict "root" $ "component" "edge"). */}}
{{- define "agentwire.image" -}}
{{- $img := .root.Values.image -}}
{{- $parts := list -}}
{{- with $img.registry }}{{ $parts = append $parts (trimSuffix "/" .) }}{{ end -}}
{{- with $img.repository }}{{ $parts = append $parts (trimSuffix "/" .) }}{{ end -}}
{{- $parts = append $parts (printf "agentwire-%s" .component) -}}
{{- printf "%s:%s" (join "/" $parts) (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{- define "agentwire.configMapName" -}}
{{- printf "%s-config" (include "agentwire.fullname" .) -}}
{{- end -}}

{{- define "agentwire.keysSecretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-keys" (include "agentwire.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "agentwire.keysSecretKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretKey }}{{- else -}}keys.yaml{{- end -}}
{{- end -}}

{{- define "agentwire.streamTokenSecretName" -}}
{{- if .Values.auth.streamTokenSecret.existingSecret -}}
{{- .Values.auth.streamTokenSecret.existingSecret -}}
{{- else -}}
{{- printf "%s-stream-token" (include "agentwire.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "agentwire.streamTokenSecretKey" -}}
{{- if .Values.auth.streamTokenSecret.existingSecret -}}{{ .Values.auth.streamTokenSecret.existingSecretKey }}{{- else -}}stream-token-secret{{- end -}}
{{- end -}}

{{/* A value kept in an existing Secret of this release, else a new random one. Call with
     (dict "root" $ "name" <secret name> "key" <data key> "length" <n>). */}}
{{- define "agentwire.persistentRandom" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}

{{- define "agentwire.testKeySecretName" -}}
{{- if .Values.tests.apiKey.existingSecret -}}
{{- .Values.tests.apiKey.existingSecret -}}
{{- else -}}
{{- printf "%s-test-key" (include "agentwire.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "agentwire.testKeySecretKey" -}}
{{- if .Values.tests.apiKey.existingSecret -}}{{ .Values.tests.apiKey.existingSecretKey }}{{- else -}}api-key{{- end -}}
{{- end -}}

{{/* True when the chart generates the helm-test API key (it is then added to the chart's keys.yaml). */}}
{{- define "agentwire.generateTestKey" -}}
{{- if and .Values.tests.enabled .Values.tests.apiKey.generate (not .Values.tests.apiKey.existingSecret) (not .Values.auth.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* The generated helm-test API key, the same in every template of one render (memoised in a
     private map) and across upgrades (read back from its Secret). */}}
{{- define "agentwire.testApiKey" -}}
{{- $memo := .Values.tests.apiKey -}}
{{- if not (hasKey $memo "_generated") -}}
{{- $key := include "agentwire.persistentRandom" (dict "root" . "name" (include "agentwire.testKeySecretName" .) "key" "api-key" "length" 40) -}}
{{- $_ := set $memo "_generated" $key -}}
{{- end -}}
{{- get $memo "_generated" -}}
{{- end -}}

{{/* Environment shared by every service container. Call with (dict "root" $ "component" "edge"). */}}
{{- define "agentwire.env" -}}
{{- $v := .root.Values -}}
- name: ENVIRONMENT
  value: {{ $v.environment | quote }}
- name: AGENTWIRE_CONFIG
  value: /etc/agentwire/config/agentwire.yaml
- name: AGENTWIRE_HTTP__HOST
  value: "0.0.0.0"
- name: AGENTWIRE_KAFKA__BOOTSTRAP_SERVERS
  value: {{ required "kafka.bootstrapServers is required: the host:port list of an existing Kafka cluster" $v.kafka.bootstrapServers | quote }}
- name: AGENTWIRE_KAFKA__PARTITIONS
  value: {{ $v.kafka.partitions | quote }}
- name: AGENTWIRE_KAFKA__TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: AGENTWIRE_KAFKA__REPLICATION_FACTOR
  value: {{ $v.kafka.replicationFactor | quote }}
- name: AGENTWIRE_KAFKA__RETENTION_HOURS
  value: {{ $v.kafka.retentionHours | quote }}
- name: AGENTWIRE_KAFKA__REQUEST_TIMEOUT_MS
  value: {{ $v.kafka.requestTimeoutMs | quote }}
- name: AGENTWIRE_RETENTION__TASKS_DAYS
  value: {{ $v.retention.tasksDays | quote }}
{{- if include "agentwire.isHttp" .component }}
- name: AGENTWIRE_RETENTION__SWEEP_INTERVAL_S
  value: {{ $v.retention.sweepIntervalSeconds | quote }}
- name: AGENTWIRE_STORE__DSN
{{- if $v.store.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.store.existingSecret | quote }}
      key: {{ $v.store.existingSecretKey | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-store" (include "agentwire.fullname" .root) | quote }}
      key: dsn
{{- end }}
- name: AGENTWIRE_STORE__POOL_SIZE
  value: {{ $v.store.poolSize | quote }}
- name: AGENTWIRE_HTTP__PORT
  value: {{ (index $v .component).port | quote }}
- name: AGENTWIRE_AUTH__KEYS_FILE
  value: /etc/agentwire/auth/keys.yaml
- name: AGENTWIRE_AUTH__STREAM_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "agentwire.streamTokenSecretName" .root }}
      key: {{ include "agentwire.streamTokenSecretKey" .root }}
{{- else }}
- name: AGENTWIRE_{{ upper .component }}__OPS_PORT
  value: {{ (index $v .component).opsPort | quote }}
{{- end }}
{{- if eq .component "processor" }}
- name: AGENTWIRE_PROCESSOR__DATA_DIR
  value: /var/lib/agentwire/processor
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with (index $v .component).extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
