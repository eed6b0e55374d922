"""Root conftest: loads the real-dependency fixtures and the platform fixtures."""

from tests.platform import plugin_modules
from tests.realdeps import PLUGIN_MODULES as REALDEPS_PLUGIN_MODULES

pytest_plugins = [*REALDEPS_PLUGIN_MODULES, *plugin_modules()]
