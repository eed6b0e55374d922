"""The Kubernetes runtime: Analytics custom resources, Jobs, CronJobs, Deployments.

``api`` talks to the apiserver, ``manifests`` builds children (pure),
``observe`` turns Jobs and pods into an observation (pure), ``store`` and
``runtime`` are the adapters the reconciler uses, ``watch`` feeds the work
queue from kopf's watch streams.
"""
