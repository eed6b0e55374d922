{{/*
Pieces every dtpoc service pod shares. Call with
  (dict "ctx" $ "component" "files" "values" .Values.files)
*/}}

{{/* The pod-level fields every dtpoc service pod has. */}}
{{- define "dtpoc.platformPodCommon" -}}
{{- $sec := .ctx.Values.platformSecurity -}}
serviceAccountName: {{ include "dtpoc.componentName" (dict "ctx" .ctx "component" .component) }}
enableServiceLinks: false
securityContext:
  {{- include "dtpoc.podSecurityContext" (dict "uid" $sec.runAsUser "gid" $sec.runAsGroup) | nindent 2 }}
{{- include "dtpoc.scheduling" (dict "ctx" .ctx "values" .values) }}
{{- if gt (int .values.replicas) 1 }}
topologySpreadConstraints:
  # Replicas on different nodes when there are several, so one node's loss
  # leaves the service up; ScheduleAnyway keeps one-node clusters working.
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "dtpoc.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* Container fields every dtpoc service container has. */}}
{{- define "dtpoc.platformContainerCommon" -}}
{{- $sec := .ctx.Values.platformSecurity -}}
image: {{ include "dtpoc.platformImage" (dict "ctx" .ctx "component" .valuesKey) | quote }}
imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
securityContext:
  {{- include "dtpoc.containerSecurityContext" (dict "uid" $sec.runAsUser "gid" $sec.runAsGroup) | nindent 2 }}
resources:
  {{- toYaml .values.resources | nindent 2 }}
{{- end -}}

{{/* A PodDisruptionBudget for a component with more than one replica. */}}
{{- define "dtpoc.pdb" -}}
{{- if gt (int .values.replicas) 1 }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "dtpoc.componentName" . }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "dtpoc.labels" . | nindent 4 }}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      {{- include "dtpoc.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
