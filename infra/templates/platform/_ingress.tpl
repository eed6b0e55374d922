{{/*
TLS of the chart's Ingress and of the Ingresses the operator creates for
exposed analytics services: one Secret (type kubernetes.io/tls) in the
release namespace, made by the user or by cert-manager.
*/}}

{{/* Name of the TLS Secret: ingress.tls.secretName, or <fullname>-tls. */}}
{{- define "dtpoc.ingressTlsSecret" -}}
{{- .Values.ingress.tls.secretName | default (include "dtpoc.componentName" (dict "ctx" . "component" "tls")) -}}
{{- end -}}

{{/* Whether the Ingress serves HTTPS. */}}
{{- define "dtpoc.ingressScheme" -}}
{{- ternary "https" "http" (and .Values.ingress.enabled .Values.ingress.tls.enabled) -}}
{{- end -}}

{{/* Annotations of the chart's Ingress: the user's, plus cert-manager's issuer when named. */}}
{{- define "dtpoc.ingressAnnotations" -}}
{{- $annotations := deepCopy (.Values.ingress.annotations | default dict) -}}
{{- $tls := .Values.ingress.tls -}}
{{- if $tls.enabled -}}
{{- with $tls.clusterIssuer -}}
{{- $_ := set $annotations "cert-manager.io/cluster-issuer" . -}}
{{- end -}}
{{- with $tls.issuer -}}
{{- $_ := set $annotations "cert-manager.io/issuer" . -}}
{{- end -}}
{{- end -}}
{{- with $annotations -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}
