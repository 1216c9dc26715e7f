"""Plugin discovery: one plugin manager per app."""
from __future__ import annotations

import pluggy

from . import hookspecs


def make_plugin_manager(plugins=None) -> pluggy.PluginManager:
    """Load the installed plugins (entry points), or exactly ``plugins`` when given (tests)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if plugins is None:
        pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
    else:
        for plugin in plugins:
            pm.register(plugin)
    pm.check_pending()
    return pm
