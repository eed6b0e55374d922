"""Root conftest: loads the real-dependency fixtures and the platform fixtures."""

from tests.platform import plugin_modules

pytest_plugins = [*plugin_modules()]
