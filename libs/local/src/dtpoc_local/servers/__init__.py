"""Start one of dtpoc's own services as a child process and wait until it serves.

One module per service; the pytest fixtures in ``tests/platform`` wrap these
starters, and the benches call them directly.
"""
