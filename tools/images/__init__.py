"""The project's container image builds (``make images``; see ``__main__``)."""
