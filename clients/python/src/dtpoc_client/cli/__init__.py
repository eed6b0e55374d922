"""The `dtpoc` command (Click + Rich); entry point :func:`dtpoc_client.cli.main.main`."""
