"""The chart's sensor half on one machine: Mosquitto, InfluxDB and Telegraf from a render.

Used by ``tests/sensors`` and ``bench/sensors.py``: :mod:`.render` runs the
pinned helm over ``infra/``, :mod:`.chartparts` reads what the pods would be
given, :mod:`.stack` runs the real servers from it.
"""
