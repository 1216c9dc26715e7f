"""The plugin's pages as a cabinet admin sees them at 1366 and 1024 px (issue 28): no text
runs out of its box, no word is broken across lines, no Latin word outside code, inputs and
the allow-list; a screenshot of each page at each width goes to test-artifacts/layout/."""
from pathlib import Path

import pytest

from host_stub.testing import browser_login, needs_chromium

pytestmark = needs_chromium
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "layout"
WIDTHS = (1366, 1024)
PAGES = {"settings": "/plugins/megaplan/", "journal": "/plugins/megaplan/journal/",
         "report": "/plugins/megaplan/callbacks/", "credential": "/plugins/megaplan/credentials/1"}

# Latin words a Russian admin may meet outside code: names of things that have no Russian one.
ALLOWED_LATIN = {"CSV", "Excel", "UTC", "CRM", "API", "YOURDOMAIN", "megaplan", "ru", "http", "https", "json",
                 "status", "Bearer", "POST"}

# Every visible text node of the plugin's part of the page, checked in the page itself.
AUDIT = r"""
() => {
  const root = document.querySelector(".megaplan") || document.body;
  const out = {overflow: [], broken: [], latin: [], wide: document.documentElement.scrollWidth >
               document.documentElement.clientWidth + 1};
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, text = node.textContent, parent = node.parentElement;
    if (!text.trim() || !parent) continue;
    if (parent.closest("script, style, [hidden], details:not([open]) > :not(summary)")) continue;
    const style = getComputedStyle(parent);
    if (style.display === "none" || style.visibility === "hidden") continue;
    const inCode = parent.closest("code, kbd, pre, input, textarea, select, option");
    if (!inCode) {
      for (const w of text.match(/[A-Za-z][A-Za-z0-9_-]*/g) || []) out.latin.push(w);
    }
    const box = parent.getBoundingClientRect();
    const whole = document.createRange();
    whole.selectNodeContents(node);
    for (const r of whole.getClientRects()) {
      if (r.width > 0 && (r.right > box.right + 1 || r.left < box.left - 1)) {
        out.overflow.push(text.trim().slice(0, 80));
        break;
      }
    }
    if (inCode) continue;  // a long key or address may wrap anywhere
    const words = /[\p{L}\p{N}]{2,}/gu;
    let m;
    while ((m = words.exec(text))) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (lines.size > 1) out.broken.push(m[0]);
    }
  }
  return out;
}
"""


@pytest.fixture
def a_day_of_calls(app, pbx, rq_worker, megaplan_sandbox, integration):
    """Every kind of row the pages show: answered, missed with a callback, rated, failed,
    not sent, and a number two clients share."""
    megaplan_sandbox.state.add_contractor("ContractorCompany", {"name": "ООО Альфа"}, "+7 916 111-22-33", "1000002")
    megaplan_sandbox.state.add_contractor("ContractorHuman", {"firstName": "Олег", "lastName": "Орлов"},
                                          "89161112233", "1000004")
    integration(create_communication="y", route_to_manager="y", create_client_on_incoming="y")
    from megaplan_plugin.delivery import queues
    with app.app_context():
        queues.enqueue_index(1)
    rq_worker()
    call = pbx.new_call(phone="79161234567")
    call.ring("ivanov").answer("ivanov")
    call.history(status="Success", user="ivanov", rating="4")
    missed = pbx.new_call(phone="79031112233")
    missed.ring("ivanov", "petrova")
    missed.history(status="missed", user="pbx", duration=20, wait="20")
    pbx.new_call(phone="79161112233").history(status="Success", user="petrova")
    pbx.new_call(diversion="74950000009").history(status="Success", user="ivanov")  # not on the list
    rq_worker()
    megaplan_sandbox.state.outage(3600)
    pbx.new_call(phone="79165554433").history(status="Success", user="sidorov")
    rq_worker(scheduled=False)


@pytest.mark.usefixtures("a_day_of_calls")
def test_every_page_fits_its_boxes_at_1366_and_1024_and_speaks_russian(live_server, browser_page):
    page = browser_page
    browser_login(page, live_server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    found = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in PAGES.items():
            page.goto(live_server + path)
            page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            if name == "settings":  # the status panel on its own, as the issue saw it
                page.locator("#status").screenshot(path=str(SHOTS / f"status-panel-{width}.png"))
            audit = page.evaluate(AUDIT)
            found[(name, width)] = audit
    problems = {key: {k: v for k, v in audit.items() if k != "latin" and v} for key, audit in found.items()}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}
    latin = {key: sorted(set(audit["latin"]) - ALLOWED_LATIN) for key, audit in found.items()}
    assert not any(latin.values()), {k: v for k, v in latin.items() if v}


def test_the_audit_sees_a_broken_word_an_overflow_and_a_latin_word(app, live_server, browser_page, integration):
    """The checks above can fail: the status panel as it was (words broken anywhere), a title
    squeezed into a box too narrow for it, and an English word added to a page."""
    page = browser_page
    browser_login(page, live_server)
    page.set_viewport_size({"width": 1024, "height": 900})
    page.goto(live_server + "/plugins/megaplan/")
    page.evaluate("""() => {
      document.querySelectorAll('.megaplan .facts dd').forEach(dd => { dd.style.wordBreak = 'break-all';
                                                                       dd.style.maxWidth = '9rem'; });
      const h1 = document.querySelector('.megaplan h1');
      h1.style.width = '4rem'; h1.style.whiteSpace = 'nowrap';
    }""")
    page.evaluate("document.querySelector('.megaplan .lead').textContent += ' Service unavailable'")
    audit = page.evaluate(AUDIT)
    assert audit["broken"] and audit["overflow"]
    assert {"Service", "unavailable"} <= set(audit["latin"]) - ALLOWED_LATIN
