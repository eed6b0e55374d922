{{/*
gRPC credentials of the platform's components (see docs/architecture.md,
"Threat model"). Every caller presents its own token; a server mounts the
tokens of the callers it accepts as files named by the caller; Files and the
operator share the key that signs the input fetcher's scoped tokens.

Call with (dict "ctx" $ "prefix" "DTPOC_FILES" "component" "files"
"callers" (list "gateway" ...) "fetchKey" true).
*/}}

{{/* The generated Secret of a component's gRPC token (key `token`). */}}
{{- define "dtpoc.grpcTokenSecret" -}}
{{- include "dtpoc.componentName" (dict "ctx" .ctx "component" (printf "grpc-%s" .component)) -}}
{{- end -}}

{{/* The generated Secret of the fetch-token key (key `key`). */}}
{{- define "dtpoc.grpcFetchKeySecret" -}}
{{- include "dtpoc.componentName" (dict "ctx" .ctx "component" "grpc-fetch-key") -}}
{{- end -}}

{{/* One projected-volume source: component .component's token as file .path. */}}
{{- define "dtpoc.grpcTokenSource" -}}
{{- $existing := .ctx.Values.secrets.grpcExistingSecret -}}
- secret:
    name: {{ $existing | default (include "dtpoc.grpcTokenSecret" .) }}
    items:
      - key: {{ if $existing }}{{ .component }}{{ else }}token{{ end }}
        path: {{ .path }}
{{- end -}}

{{- define "dtpoc.grpcAuthEnv" -}}
- name: {{ .prefix }}_GRPC_TOKEN_FILE
  value: /var/run/dtpoc/grpc-token/token
{{- if .callers }}
- name: {{ .prefix }}_CALLER_TOKENS_DIR
  value: /var/run/dtpoc/grpc-callers
{{- end }}
{{- if .fetchKey }}
- name: {{ .prefix }}_FETCH_KEY_FILE
  value: /var/run/dtpoc/grpc-fetch-key/key
{{- end }}
{{- end -}}

{{- define "dtpoc.grpcAuthMounts" -}}
- name: grpc-token
  mountPath: /var/run/dtpoc/grpc-token
  readOnly: true
{{- if .callers }}
- name: grpc-callers
  mountPath: /var/run/dtpoc/grpc-callers
  readOnly: true
{{- end }}
{{- if .fetchKey }}
- name: grpc-fetch-key
  mountPath: /var/run/dtpoc/grpc-fetch-key
  readOnly: true
{{- end }}
{{- end -}}

{{- define "dtpoc.grpcAuthVolumes" -}}
{{- $existing := .ctx.Values.secrets.grpcExistingSecret -}}
- name: grpc-token
  projected:
    sources:
      {{- include "dtpoc.grpcTokenSource" (dict "ctx" .ctx "component" .component "path" "token") | nindent 6 }}
{{- if .callers }}
- name: grpc-callers
  projected:
    sources:
      {{- range .callers }}
      {{- include "dtpoc.grpcTokenSource" (dict "ctx" $.ctx "component" . "path" .) | nindent 6 }}
      {{- end }}
{{- end }}
{{- if .fetchKey }}
- name: grpc-fetch-key
  projected:
    sources:
      - secret:
          name: {{ $existing | default (include "dtpoc.grpcFetchKeySecret" .) }}
          items:
            - key: {{ if $existing }}fetch-key{{ else }}key{{ end }}
              path: key
{{- end }}
{{- end -}}
