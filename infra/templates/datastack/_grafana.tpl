{{/* Grafana datasource provisioning: this release's InfluxDB (Flux), when there is one. */}}
{{- define "dtpoc.grafanaDatasources" -}}
apiVersion: 1
{{- if .Values.influxdb.enabled }}
datasources:
  - name: InfluxDB
    uid: dtpoc-influxdb
    type: influxdb
    access: proxy
    url: {{ include "dtpoc.telegrafInfluxUrl" . | quote }}
    isDefault: true
    editable: false
    jsonData:
      version: Flux
      organization: {{ .Values.influxdb.organization | quote }}
      defaultBucket: {{ .Values.influxdb.bucket | quote }}
      tlsSkipVerify: false
    secureJsonData:
      token: $INFLUX_TOKEN
{{- else }}
datasources: []
{{- end }}
{{- end -}}

{{/*
The starter dashboard: one time-series panel per Telegraf sensor, showing
its fields grouped by its tags. Built as data and printed with toPrettyJson,
so it is valid JSON whatever the sensor names.
*/}}
{{- define "dtpoc.grafanaDashboard" -}}
{{- $bucket := .Values.telegraf.influxdb.bucket | default .Values.influxdb.bucket -}}
{{- $panels := list -}}
{{- $sensors := list -}}
{{- if and .Values.telegraf.enabled .Values.grafana.dashboard.enabled -}}
{{- $sensors = .Values.telegraf.sensors -}}
{{- end -}}
{{- range $i, $s := $sensors -}}
{{- $query := printf "from(bucket: %s)\n  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n  |> filter(fn: (r) => r._measurement == %s)\n  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)" (toJson $bucket) (toJson $s.measurement) -}}
{{- $panel := dict
    "id" (add1 $i)
    "type" "timeseries"
    "title" (printf "%s (%s)" $s.name $s.measurement)
    "datasource" (dict "type" "influxdb" "uid" "dtpoc-influxdb")
    "gridPos" (dict "h" 9 "w" 12 "x" (mul (mod $i 2) 12) "y" (mul (div $i 2) 9))
    "targets" (list (dict "refId" "A" "query" $query "datasource" (dict "type" "influxdb" "uid" "dtpoc-influxdb")))
    "fieldConfig" (dict "defaults" (dict "custom" (dict "lineWidth" 1 "fillOpacity" 10)) "overrides" list)
    "options" (dict "legend" (dict "displayMode" "list" "placement" "bottom") "tooltip" (dict "mode" "multi"))
-}}
{{- $panels = append $panels $panel -}}
{{- end -}}
{{- $dashboard := dict
    "uid" "dtpoc-sensors"
    "title" .Values.grafana.dashboard.title
    "tags" (list "dtpoc" "sensors")
    "timezone" "browser"
    "schemaVersion" 39
    "version" 1
    "refresh" "30s"
    "time" (dict "from" "now-6h" "to" "now")
    "panels" $panels
-}}
{{- toPrettyJson $dashboard -}}
{{- end -}}
