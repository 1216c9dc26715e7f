"""A recording plays in a real browser from Megaplan's side (the sandbox's page) through the
plugin's own link, seeks, and still plays after the PBX's own link has lapsed (issue 25)."""
from datetime import timedelta

import requests

from host_stub.testing import needs_chromium

pytestmark = needs_chromium


def _play(page, sandbox_url: str) -> dict:
    """Open the sandbox's page, play the first recording muted (headless autoplay allows it),
    seek to the middle; what the <audio> element says afterwards."""
    page.goto(sandbox_url + "/")
    page.locator("audio").first.wait_for(state="attached")
    return page.evaluate("""async () => {
        const audio = document.querySelector("audio");
        audio.muted = true;
        await audio.play();
        if (!(audio.duration > 0)) {
            await new Promise(done => audio.addEventListener("durationchange", done, {once: true}));
        }
        const middle = audio.duration / 2;
        await new Promise(done => { audio.addEventListener("seeked", done, {once: true});
                                    audio.currentTime = middle; });
        return {duration: audio.duration, at: audio.currentTime, middle: middle,
                error: audio.error && audio.error.code};
    }""")


def test_a_recording_plays_and_seeks_from_megaplans_side_after_the_pbx_link_lapsed(
        app, live_server, pbx, rq_worker, megaplan_sandbox, integration, browser_page):
    app.config["MEGAPLAN_PUBLIC_URL"] = live_server  # where Megaplan's player reaches the cabinet
    call = pbx.new_call()
    call.ring("ivanov").answer("ivanov")
    call.history(status="Success", user="ivanov", duration=42,
                 link=f"{live_server}/pbx/demo/recordings/{call.call_id}")
    rq_worker()
    seen = []
    browser_page.on("response", lambda r: seen.append((r.url, r.status))
                    if "/plugins/megaplan/recordings/" in r.url else None)

    played = _play(browser_page, megaplan_sandbox.url)
    assert played["error"] is None and played["duration"] >= 1
    assert abs(played["at"] - played["middle"]) < 0.5
    assert any(status == 206 for _, status in seen), seen  # the player asked for ranges

    app.extensions["cabinet"].pbx.clock_offset = timedelta(days=app.config["CABINET_PBX_LINK_DAYS"] + 1)
    assert requests.get(f"{live_server}/pbx/demo/recordings/{call.call_id}", timeout=10).status_code == 404
    seen.clear()
    played = _play(browser_page, megaplan_sandbox.url)
    assert played["error"] is None and played["duration"] >= 1  # ours still plays
    assert seen and all(status in (200, 206) for _, status in seen), seen
