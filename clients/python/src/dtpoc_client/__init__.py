"""Python client of the dtpoc API (REST through the gateway, or gRPC)."""
