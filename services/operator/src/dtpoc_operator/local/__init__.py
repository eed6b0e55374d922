"""The local runtime: Analytics documents in MongoDB, replicas as child processes.

``store`` polls the documents the orchestrator writes, ``runtime`` starts and
observes replica processes, ``replica`` is the small supervisor each replica
runs under (it plays the kubelet's part: fetch inputs, run, record the exit),
``schedule`` decides when a scheduled service's next run is due.
"""
