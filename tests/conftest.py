"""Root conftest: loads the real-dependency fixtures and the platform fixtures."""

import os

# gRPC's fork handler (registered when grpc is imported) can deadlock this
# process inside subprocess.Popen while channels are open; the fixtures
# start servers with fork+exec and never need gRPC in a forked child.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from tests.platform import plugin_modules
from tests.realdeps import PLUGIN_MODULES as REALDEPS_PLUGIN_MODULES

pytest_plugins = [*REALDEPS_PLUGIN_MODULES, *plugin_modules()]
