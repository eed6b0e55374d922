"""Adapters: MongoDB (service records, local Analytics store), Kubernetes, Files."""
