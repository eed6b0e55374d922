"""Sensor readings end to end: MQTT → Telegraf → InfluxDB on the chart's real servers."""
