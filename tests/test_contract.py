"""The contract module: every hookspec documented, every hook implemented by the plugin."""
import inspect

import pluggy
import pytest

from host_stub import hookspecs
from host_stub.plugins import make_plugin_manager

HOOKS = ["cabinet_plugin_info", "cabinet_init_app", "call_started", "call_answered",
         "call_transferred", "call_ended", "call_rated", "route_request"]


def _specs():
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return {name: getattr(pm.hook, name) for name in dir(pm.hook) if not name.startswith("_")}


def test_the_contract_names_exactly_the_hooks_of_the_contract():
    assert sorted(_specs()) == sorted(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_is_documented(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 120, f"{name} needs a full docstring"
    assert ":return:" in doc or "return" in doc.lower()
    assert "budget" in doc.lower() or name in ("cabinet_plugin_info",), f"{name}: say the time budget"


def test_only_route_request_is_firstresult():
    specs = _specs()
    assert specs["route_request"].spec.opts["firstresult"] is True
    assert not any(specs[n].spec.opts["firstresult"] for n in HOOKS if n != "route_request")


def test_the_plugin_implements_every_hook_with_valid_arguments():
    import megaplan_plugin.hooks as plugin
    pm = make_plugin_manager([plugin])  # register() validates argument names against the specs
    for name in HOOKS:
        impls = [i for i in getattr(pm.hook, name).get_hookimpls() if i.plugin is plugin]
        assert impls, f"megaplan_plugin does not implement {name}"


def test_the_plugin_is_found_through_its_entry_point():
    from importlib.metadata import entry_points
    found = {ep.name: ep.value for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP)}
    assert found.get("megaplan") == "megaplan_plugin.hooks"


def test_host_discovers_installed_plugins_and_explicit_lists_replace_discovery():
    pm = make_plugin_manager()
    names = {type(p).__name__ if not inspect.ismodule(p) else p.__name__ for p in pm.get_plugins()}
    assert "megaplan_plugin.hooks" in names
    assert make_plugin_manager([]).get_plugins() == set()


def test_a_hook_with_an_unknown_argument_is_refused():
    class Bad:
        @hookspecs.hookimpl
        def call_started(self, host, event, surprise):
            pass
    with pytest.raises(pluggy.PluginValidationError):
        make_plugin_manager([Bad()])
