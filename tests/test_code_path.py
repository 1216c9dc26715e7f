"""The sync of one finished call is short to follow, from the hook to the history request.

Traced with ``sys.setprofile``. At each step of the way (the call stored, its writer woken,
the history request sent) the plugin modules on the call stack are the line a reader follows;
the Megaplan client package (``megaplan_plugin.megaplan``) counts as one module. The line
passes at most eight modules and never comes back to one it has left. Lookups that return
before the next step (settings, owner, client index, fields, intents) are side trips: the
test lists them too, so the README's figure can be checked.
"""
import sys

import pytest

from host_stub.testing import run_jobs

pytestmark = pytest.mark.usefixtures("integration")
PLUGIN = "megaplan_plugin."
STEPS = {("delivery.outbox", "insert_row"): "stored", ("delivery.queues", "wake_writer"): "woken"}


def _module(frame) -> str | None:
    name = frame.f_globals.get("__name__", "")
    if not name.startswith(PLUGIN):
        return None
    name = name[len(PLUGIN):]
    return "megaplan" if name == "megaplan" or name.startswith("megaplan.") else name


def _line(stack: list[str]) -> list[str]:
    return [m for i, m in enumerate(stack) if i == 0 or stack[i - 1] != m]


def trace(app, push) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """([(step, modules on the stack)], every plugin module that ran code on the way)."""
    steps, ran, stack = [], [], []

    def profile(frame, event, arg):
        if len(steps) == 3 or frame.f_code.co_name == "<module>":  # imports are not the way
            return
        if event == "call" and stack and frame.f_code.co_name == "request" and \
                frame.f_globals.get("__name__") == "requests.sessions" and \
                str(frame.f_locals.get("url", "")).split("?")[0].endswith("/callInfo/history"):
            steps.append(("history request", _line(stack)))
            return
        module = _module(frame)
        if module is None:
            return
        if not stack and (module, frame.f_code.co_name) not in {("hooks", "call_ended"),
                                                                 ("delivery.worker", "wrapper")}:
            return  # the test's and RQ's own calls into the plugin are not the way
        if event == "call":
            stack.append(module)
            if module not in ran:
                ran.append(module)
            step = STEPS.get((module, frame.f_code.co_name))
            if step and step not in [s for s, _ in steps]:
                steps.append((step, _line(stack)))
        elif event == "return" and stack:
            stack.pop()

    sys.setprofile(profile)
    try:
        push()
        run_jobs(app, scheduled=False)
    finally:
        sys.setprofile(None)
    return steps, ran


def check_line(steps) -> list[str]:
    assert [s for s, _ in steps] == ["stored", "woken", "history request"], steps
    line, left = [], set()
    for _, modules in steps:
        assert len(modules) == len(set(modules)), f"a module called back into: {modules}"
        left |= set(line) - set(modules)
        assert not set(modules) & left, f"came back to a module it had left: {steps}"
        line += [m for m in modules if m not in line]
    return line


@pytest.mark.parametrize("phone", ["79161234567", "79990001111"], ids=["known client", "unknown number"])
def test_the_way_from_the_hook_to_the_history_request(app, pbx, rq_worker, phone):
    rq_worker()  # activation's jobs (the client index) out of the way
    steps, ran = trace(app, lambda: pbx.new_call(phone=phone).history(status="Success", user="ivanov"))
    line = check_line(steps)
    print("\nline:", " → ".join(line), f"({len(line)} modules)")
    print("side trips:", ", ".join(m for m in ran if m not in line))
    assert len(line) <= 8, line
