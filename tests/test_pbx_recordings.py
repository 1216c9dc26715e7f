"""The stub PBX's recordings (contract revision 3): a real audio file per answered call, a
public link that lapses, and the authenticated download by byte range that lasts longer."""
import io
import wave
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from host_stub.testing import post_form


@pytest.fixture
def answered(app, logged_in):
    """A call rung, answered and hung up through the simulator's buttons: (call id, pushed link)."""
    host = app.extensions["cabinet"]
    post_form(logged_in, "/simulator/incoming", {"in-phone": "79161234567", "in-virtual_number": "74950000001",
                                                 "in-users": "ivanov"}, page="/simulator/")
    (call,) = host.pbx.live_calls("demo")
    for action in ("answer", "hangup"):
        post_form(logged_in, "/simulator/action", {"call_id": call.call_id, "action": action, "user": "ivanov"},
                  page="/simulator/")
    (entry,) = host.pbx.store.calls_between("demo", call.started_at - timedelta(minutes=1),
                                            call.started_at + timedelta(hours=1))
    return call.call_id, entry.recording_url


def test_an_answered_call_has_a_real_recording_behind_a_public_link(app, client, answered):
    call_id, link = answered
    assert urlsplit(link).path == f"/pbx/demo/recordings/{call_id}"
    response = client.get(urlsplit(link).path)
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    with wave.open(io.BytesIO(response.data)) as audio:
        assert audio.getframerate() == 8000 and audio.getnframes() >= 8000  # at least a second of sound
    assert int(response.headers["Content-Length"]) == len(response.data)


def test_the_authenticated_download_reads_byte_ranges(app, client, answered):
    call_id, link = answered
    pbx = app.extensions["cabinet"].pbx
    whole = client.get(urlsplit(link).path).data
    for start, end, expected in [(None, None, whole), (0, 99, whole[:100]), (100, 199, whole[100:200]),
                                 (None, 100, whole[-100:]), (len(whole) - 10, len(whole) + 50, whole[-10:])]:
        found = pbx.recording("demo", call_id, start, end)
        try:
            assert b"".join(found.chunks) == expected and found.total_length == len(whole)
            assert found.content_type == "audio/wav"
        finally:
            found.close()
    past = pbx.recording("demo", call_id, len(whole), None)
    assert past.end < past.start and b"".join(past.chunks) == b""
    assert pbx.recording("demo", "no-such-call") is None and pbx.recording("other", call_id) is None


def test_the_public_link_lapses_before_the_pbx_forgets_the_recording(app, client, answered):
    call_id, link = answered
    pbx = app.extensions["cabinet"].pbx
    pbx.clock_offset = timedelta(days=app.config["CABINET_PBX_LINK_DAYS"], hours=1)
    assert client.get(urlsplit(link).path).status_code == 404  # as the real PBX's link after a week
    found = pbx.recording("demo", call_id)
    assert found is not None and found.total_length > 0
    found.close()
    pbx.clock_offset = timedelta(days=app.config["CABINET_PBX_RECORDING_DAYS"], hours=1)
    assert pbx.recording("demo", call_id) is None


def test_a_missed_call_has_no_recording(app, pbx):
    call = pbx.new_call()
    call.ring("ivanov")
    call.history(status="missed", user="pbx", duration=10)
    assert app.extensions["cabinet"].pbx.recording("demo", call.call_id) is None


def test_a_recording_pushed_from_outside_is_fetched_once_it_is_ready(app, pbx):
    """A PBX in front of the stub pushes its own link; the recording is not there at first."""
    import threading
    import time

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response
    asked = []
    audio = b"ID3" + bytes(range(256)) * 100

    def recording_server(environ, start_response):
        asked.append(environ["PATH_INFO"])
        ready = len(asked) > 1  # the first ask: not made yet
        return Response(audio if ready else b"not yet", 200 if ready else 404,
                        mimetype="audio/mpeg" if ready else "text/plain")(environ, start_response)
    server = make_server("127.0.0.1", 0, recording_server, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        call = pbx.new_call()
        call.history(status="Success", user="ivanov", duration=30,
                     link=f"http://127.0.0.1:{server.server_port}/r/{call.call_id}.mp3")
        store = app.extensions["cabinet"].pbx
        deadline = time.monotonic() + 30
        while (found := store.recording("demo", call.call_id)) is None:
            assert time.monotonic() < deadline, f"never fetched; asked {asked}"
            time.sleep(0.1)
        try:
            assert found.content_type == "audio/mpeg" and b"".join(found.chunks) == audio
        finally:
            found.close()
        assert len(asked) == 2  # once not ready, once fetched: never again
    finally:
        server.shutdown()
