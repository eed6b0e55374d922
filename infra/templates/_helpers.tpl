{{/*
Names, labels, images, security contexts and generated credentials shared by
every template. Component templates call these with a dict:
  (dict "ctx" $ "component" "files")
*/}}

{{- define "dtpoc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-wide prefix of every object name. */}}
{{- define "dtpoc.fullname" -}}
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

{{/* Name of one component's objects: <fullname>-<component>, at most 63 characters. */}}
{{- define "dtpoc.componentName" -}}
{{- printf "%s-%s" (include "dtpoc.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dtpoc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: immutable on Deployments and StatefulSets, so they hold only
what never changes between releases (name, instance, component).
*/}}
{{- define "dtpoc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dtpoc.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dtpoc.labels" -}}
{{ include "dtpoc.selectorLabels" . }}
helm.sh/chart: {{ include "dtpoc.chart" .ctx }}
app.kubernetes.io/part-of: dtpoc
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the chart-wide objects that belong to no single component. */}}
{{- define "dtpoc.releaseLabels" -}}
app.kubernetes.io/name: {{ include "dtpoc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ include "dtpoc.chart" . }}
app.kubernetes.io/part-of: dtpoc
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Image reference of a dtpoc component: the component's image.repository/tag
override the shared image; the tag defaults to the chart's appVersion; a
digest, when given, pins the image.
*/}}
{{- define "dtpoc.platformImage" -}}
{{- $shared := .ctx.Values.image -}}
{{- $own := (index .ctx.Values .component).image | default dict -}}
{{- $repository := $own.repository | default $shared.repository -}}
{{- $tag := $own.tag | default $shared.tag | default .ctx.Chart.AppVersion -}}
{{- $digest := $own.digest | default $shared.digest -}}
{{- if $digest -}}
{{- printf "%s@%s" $repository $digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}
{{- end -}}

{{/* Image reference from an {repository, tag, digest} map (data-stack images). */}}
{{- define "dtpoc.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}
{{- end -}}

{{/*
Pod-level security context: non-root with a fixed uid, the runtime's default
seccomp profile, and an fsGroup so mounted volumes are writable by that uid.
Call with (dict "ctx" $ "uid" 10001 "gid" 10001).
*/}}
{{- define "dtpoc.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid | default .uid }}
fsGroup: {{ .gid | default .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Container-level security context, the same for every container of the chart:
what Pod Security "restricted" asks for, plus a read-only root filesystem.
*/}}
{{- define "dtpoc.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid | default .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Scheduling fields shared by every pod: nodeSelector, tolerations, affinity, pull secrets. */}}
{{- define "dtpoc.scheduling" -}}
{{- $c := .values -}}
{{- with ($c.nodeSelector | default .ctx.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($c.tolerations | default .ctx.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($c.affinity | default .ctx.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/*
A credential value that is generated once and then kept: the value already
stored in Secret .name (key .key) when it exists (upgrade), otherwise a new
random one. `helm template` has no cluster, so it always generates.
Call with (dict "ctx" $ "name" <secret name> "key" <key> "length" 32).
*/}}
{{- define "dtpoc.keptRandom" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int (.length | default 32)) -}}
{{- end -}}
{{- end -}}

{{/* The stored value of a key in Secret .name, or "" (see dtpoc.keptRandom). */}}
{{- define "dtpoc.storedValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- end -}}
{{- end -}}

{{/* Annotations of generated credential Secrets: kept on uninstall unless asked otherwise. */}}
{{- define "dtpoc.secretAnnotations" -}}
{{- if .Values.secrets.keepOnUninstall }}
annotations:
  # Data volumes outlive a release; their credentials must too, or a
  # reinstall generates passwords the kept databases do not know.
  helm.sh/resource-policy: keep
{{- end }}
{{- end -}}

{{/* Name of the Secret holding a component's credentials: its existingSecret or the generated one. */}}
{{- define "dtpoc.credentialsSecret" -}}
{{- $values := index .ctx.Values .component -}}
{{- if $values.auth.existingSecret -}}
{{- $values.auth.existingSecret -}}
{{- else -}}
{{- include "dtpoc.componentName" (dict "ctx" .ctx "component" (printf "%s-auth" (kebabcase .component))) -}}
{{- end -}}
{{- end -}}

{{/* DNS name of a Service of this release: <name>.<namespace>.svc.<clusterDomain>. */}}
{{- define "dtpoc.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "dtpoc.componentName" .) .ctx.Release.Namespace .ctx.Values.clusterDomain -}}
{{- end -}}

{{/* host:port of a dtpoc gRPC service (files, orchestrator). */}}
{{- define "dtpoc.grpcAddress" -}}
{{- $values := index .ctx.Values .component -}}
{{- printf "%s:%d" (include "dtpoc.serviceHost" .) (int $values.port) -}}
{{- end -}}

{{/* Name of a persistent volume claim template's storageClassName line, or nothing. */}}
{{- define "dtpoc.storageClassName" -}}
{{- $class := .storageClass -}}
{{- if .hostPath -}}
storageClassName: {{ .ctx.Values.persistence.hostPath.storageClassName | quote }}
{{- else if eq (toString $class) "-" -}}
storageClassName: ""
{{- else if $class -}}
storageClassName: {{ $class | quote }}
{{- end -}}
{{- end -}}

{{/* Writable scratch space for a container with a read-only root filesystem. */}}
{{- define "dtpoc.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .sizeLimit | default "64Mi" }}
{{- end -}}

{{/* Extra env entries from a {NAME: value} map. */}}
{{- define "dtpoc.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Name of the hostPath PersistentVolume of a component: cluster-wide, so namespaced by hand. */}}
{{- define "dtpoc.hostPathVolumeName" -}}
{{- printf "%s-%s-%s" .ctx.Release.Namespace (include "dtpoc.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* MongoDB roles array (JavaScript) granting readWrite on each database of a list. */}}
{{- define "dtpoc.mongoRoles" -}}
{{- $roles := list -}}
{{- range . -}}
{{- $roles = append $roles (dict "role" "readWrite" "db" .) -}}
{{- end -}}
{{- toJson $roles -}}
{{- end -}}

{{/* mosquitto.conf: one authenticated listener; anonymous clients refused. */}}
{{- define "dtpoc.mosquittoConfig" -}}
listener 1883
allow_anonymous false
password_file /mosquitto/auth/passwd
persistence true
persistence_location /mosquitto/data/
# QoS 1/2 readings queued per client beyond those in flight (Mosquitto's default,
# 1000, dropped the rest of a burst or an outage acknowledged to the publisher:
# bench/sensors.py). A few hundred bytes a reading: tens of MiB at most.
max_queued_messages 100000
log_dest stdout
log_timestamp_format %Y-%m-%dT%H:%M:%S
{{- end -}}

{{/* NetworkPolicy peer: the pods of some components of this release. */}}
{{- define "dtpoc.fromComponents" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .ctx.Release.Name | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: {{ toJson .components }}
{{- end -}}
