{{/*
telegraf.conf of one sensor. Strings are written with toJson: a JSON string
is a valid TOML basic string. Secrets stay out of the file: Telegraf expands
${INFLUX_TOKEN}, ${MQTT_USERNAME} and ${MQTT_PASSWORD} from the environment.
Call with (dict "ctx" $ "sensor" <sensor>).
*/}}
{{- define "dtpoc.telegrafConfig" -}}
{{- $t := .ctx.Values.telegraf -}}
{{- $s := .sensor -}}
{{- $mqtt := $s.mqtt -}}
{{- $internal := not $mqtt.servers -}}
{{- with $t.globalTags }}
[global_tags]
{{- range $k, $v := . }}
  {{ toJson $k }} = {{ toJson (toString $v) }}
{{- end }}
{{- end }}

[agent]
  interval = {{ toJson ($s.interval | default $t.agent.interval) }}
  round_interval = true
  metric_buffer_limit = {{ int $t.agent.metricBufferLimit }}
  collection_jitter = "0s"
  flush_interval = {{ toJson $t.agent.flushInterval }}
  flush_jitter = "0s"
  precision = ""
  omit_hostname = true
  debug = false
  quiet = false
  logfile = ""

[[inputs.mqtt_consumer]]
  {{- if $internal }}
  servers = [{{ printf "tcp://%s:%d" (include "dtpoc.serviceHost" (dict "ctx" .ctx "component" "mosquitto")) (int .ctx.Values.mosquitto.port) | toJson }}]
  {{- else }}
  servers = {{ toJson $mqtt.servers }}
  {{- end }}
  topics = {{ toJson $mqtt.topics }}
  qos = {{ int ($mqtt.qos | default 0) }}
  topic_tag = {{ toJson ($mqtt.topicTag | default "") }}
  {{- if gt (int ($mqtt.qos | default 0)) 0 }}
  # QoS 1/2: a persistent session under a fixed client id, so the broker
  # queues the readings that arrive while this Telegraf is away (a broker or
  # Telegraf restart) and Telegraf acknowledges each one only once written.
  persistent_session = true
  client_id = {{ printf "%s-%s" .ctx.Release.Namespace (include "dtpoc.componentName" (dict "ctx" .ctx "component" (printf "telegraf-%s" $s.name))) | toJson }}
  {{- else }}
  persistent_session = false
  {{- end }}
  {{- if or $internal $mqtt.credentialsSecret }}
  username = "${MQTT_USERNAME}"
  password = "${MQTT_PASSWORD}"
  {{- end }}
  data_format = "json_v2"

  [[inputs.mqtt_consumer.json_v2]]
    measurement_name = {{ toJson $s.measurement }}
    {{- with $s.timestamp }}
    {{- if .path }}
    timestamp_path = {{ toJson .path }}
    timestamp_format = {{ toJson (.format | default "unix") }}
    {{- with .timezone }}
    timestamp_timezone = {{ toJson . }}
    {{- end }}
    {{- end }}
    {{- end }}
    {{- range $s.fields }}

    [[inputs.mqtt_consumer.json_v2.field]]
      path = {{ toJson .path }}
      type = {{ toJson (.type | default "float") }}
      {{- with .rename }}
      rename = {{ toJson . }}
      {{- end }}
      optional = true
    {{- end }}
    {{- range $s.tags }}

    [[inputs.mqtt_consumer.json_v2.tag]]
      path = {{ toJson .path }}
      type = {{ toJson (.type | default "string") }}
      {{- with .rename }}
      rename = {{ toJson . }}
      {{- end }}
      optional = true
    {{- end }}

[[outputs.influxdb_v2]]
  urls = [{{ include "dtpoc.telegrafInfluxUrl" .ctx | toJson }}]
  token = "${INFLUX_TOKEN}"
  organization = {{ toJson ($t.influxdb.organization | default .ctx.Values.influxdb.organization) }}
  bucket = {{ toJson ($t.influxdb.bucket | default .ctx.Values.influxdb.bucket) }}
{{- if $s.stdout }}

[[outputs.file]]
  files = ["stdout"]
  data_format = "influx"
{{- end }}

# Answers the probes: 200 while Telegraf runs its outputs.
[[outputs.health]]
  service_address = {{ printf "http://:%d" (int $t.healthPort) | toJson }}
{{- end -}}

{{/* Where sensors write: telegraf.influxdb.url, or this release's InfluxDB. */}}
{{- define "dtpoc.telegrafInfluxUrl" -}}
{{- if .Values.telegraf.influxdb.url -}}
{{- .Values.telegraf.influxdb.url -}}
{{- else -}}
{{- printf "http://%s:%d" (include "dtpoc.serviceHost" (dict "ctx" . "component" "influxdb")) (int .Values.influxdb.port) -}}
{{- end -}}
{{- end -}}
