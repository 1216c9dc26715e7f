"""The plugin's own permanent links to recordings (issue 25): what Megaplan's player opens."""
import io
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import create_engine

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.models import OutboxEntry
from megaplan_plugin.web.play_counts import PlayCounts


@pytest.fixture
def played(app, pbx, rq_worker, megaplan_sandbox, integration):
    """An answered call with the PBX's own recording, written to Megaplan: (call, plugin link path)."""
    call = pbx.new_call()
    call.ring("ivanov").answer("ivanov")
    call.history(status="Success", user="ivanov", duration=42,
                 link=f"http://localhost/pbx/demo/recordings/{call.call_id}")
    rq_worker()
    (mp_call,) = megaplan_sandbox.state.calls.values()
    (link,) = mp_call["recordLinks"]
    return call, urlsplit(link).path


@pytest.fixture
def player(app):
    """Megaplan's player: no cabinet session, no cookies."""
    return app.test_client()


def _whole(app, call_id) -> bytes:
    found = app.extensions["cabinet"].pbx.recording("demo", call_id)
    try:
        return b"".join(found.chunks)
    finally:
        found.close()


def call_day(app, call_id) -> str:
    with app.app_context():
        started = db.session.execute(db.select(OutboxEntry.started_at).filter_by(call_id=call_id)).scalar_one()
    return f"{started:%Y-%m-%d}"


def _plays(app, call_id) -> int:
    app.extensions["megaplan"].plays.flush()  # counted in memory, written once a second (web/play_counts.py)
    with app.app_context():
        return db.session.execute(db.select(OutboxEntry.recording_plays).filter_by(call_id=call_id)).scalar_one()


def test_the_link_plays_the_recording_without_a_cabinet_session(app, client, player, played):
    call, path = played
    assert path.startswith("/plugins/megaplan/recordings/demo~1~")
    response = player.get(path)
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    assert response.data == _whole(app, call.call_id)
    with wave.open(io.BytesIO(response.data)) as audio:
        assert audio.getnframes() > 0
    assert response.headers["Accept-Ranges"] == "bytes"
    assert int(response.headers["Content-Length"]) == len(response.data)
    disposition = response.headers["Content-Disposition"]
    # a file name a person can read: the date, the number, the employee
    assert disposition.startswith("inline;") and disposition.endswith(".wav")
    assert quote("+7 (916) 123-45-67") in disposition and quote("Иван Иванов") in disposition
    assert f"filename*=UTF-8''{call_day(app, call.call_id)}" in disposition
    assert _plays(app, call.call_id) == 1
    journal = client.get("/plugins/megaplan/journal/").text  # the operator sees it was played
    assert "запись прослушана: 1 раз" in journal


def test_ranges_seek_and_edges_are_answered_as_http_says(app, player, played):
    call, path = played
    whole = _whole(app, call.call_id)
    middle = player.get(path, headers={"Range": "bytes=100-199"})
    assert middle.status_code == 206 and middle.data == whole[100:200]
    assert middle.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert middle.headers["Content-Length"] == "100"
    suffix = player.get(path, headers={"Range": "bytes=-100"})
    assert suffix.status_code == 206 and suffix.data == whole[-100:]
    open_ended = player.get(path, headers={"Range": f"bytes={len(whole) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.data == whole[-10:]
    past = player.get(path, headers={"Range": f"bytes={len(whole) + 5}-"})
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{len(whole)}"
    several = player.get(path, headers={"Range": "bytes=0-9,20-29"})
    assert several.status_code == 206 and several.data == whole[:10]  # the first of them
    assert _plays(app, call.call_id) == 1  # seeking is not playing again: only the fetch from byte 0


@pytest.mark.parametrize("change", ["signature", "call", "account", "generation", "garbage"])
def test_a_forged_or_altered_token_is_404(app, player, played, change):
    call, path = played
    token = path.rsplit("/", 1)[1]
    account, generation, encoded_call, signature = token.split("~")
    forged = {
        "signature": f"{account}~{generation}~{encoded_call}~{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        "call": f"{account}~{generation}~{encoded_call[:-2]}QQ~{signature}",
        "account": f"other~{generation}~{encoded_call}~{signature}",
        "generation": f"{account}~2~{encoded_call}~{signature}",
        "garbage": "..%00~x",
    }[change]
    response = player.get(f"/plugins/megaplan/recordings/{forged}")
    assert response.status_code == 404 and "Запись не найдена" in response.text


def test_the_link_dies_with_the_plugin_the_retention_and_a_revocation(app, player, played, enable_plugin, configured):
    call, path = played
    enable_plugin(enabled=False)
    response = player.get(path)
    assert response.status_code == 410 and "отключена" in response.text
    enable_plugin()
    assert player.get(path).status_code == 200
    with app.app_context():  # the call was 91 days ago: past the default «Хранить записи» (90)
        row = db.session.execute(db.select(OutboxEntry).filter_by(call_id=call.call_id)).scalar_one()
        row.started_at = row.started_at - timedelta(days=91)
        db.session.commit()
    response = player.get(path)
    assert response.status_code == 410 and "90 дней" in response.text
    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry).filter_by(call_id=call.call_id)).scalar_one()
        row.started_at = row.started_at + timedelta(days=91)
        db.session.commit()
    assert post_form(configured, "/plugins/megaplan/recordings/revoke", {}, page="/plugins/megaplan/").status_code == 302
    response = player.get(path)
    assert response.status_code == 410 and "отозваны" in response.text


def test_the_link_outlives_the_pbxs_own_link(app, player, played):
    call, path = played
    pbx = app.extensions["cabinet"].pbx
    pbx.clock_offset = timedelta(days=app.config["CABINET_PBX_LINK_DAYS"] + 1)
    assert player.get(f"/pbx/demo/recordings/{call.call_id}").status_code == 404  # the PBX's link: dead
    assert player.get(path).status_code == 200  # ours: still plays


def test_a_recording_the_pbx_has_not_made_yet_is_503_then_410_when_it_never_comes(
        app, player, pbx, rq_worker, megaplan_sandbox, integration):
    call = pbx.new_call()
    call.history(status="Success", user="ivanov", duration=42, link="https://pbx.elsewhere.example/r/1.mp3")
    rq_worker()
    (mp_call,) = megaplan_sandbox.state.calls.values()
    path = urlsplit(mp_call["recordLinks"][0]).path
    response = player.get(path)
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert "ещё обрабатывается" in response.text
    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry).filter_by(call_id=call.call_id)).scalar_one()
        row.started_at = row.started_at - timedelta(hours=2)
        db.session.commit()
    assert player.get(path).status_code == 410


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def test_a_100_mb_recording_streams_with_flat_memory(app, player, pbx, rq_worker, megaplan_sandbox, integration):
    call = pbx.new_call()
    call.history(status="Success", user="ivanov", duration=42, link="https://pbx.elsewhere.example/r/2.mp3")
    rq_worker()
    (mp_call,) = megaplan_sandbox.state.calls.values()
    size = 100 * 2**20
    block = bytes(range(256)) * 4096  # 1 MiB

    def chunks():
        for _ in range(size // len(block)):
            yield block
    pbx_side = app.extensions["cabinet"].pbx
    pbx_side.recordings.keep("demo", call.call_id, "audio/mpeg", chunks(), pbx_side.now())
    before = _rss_mb()
    response = player.get(urlsplit(mp_call["recordLinks"][0]).path, buffered=False)
    assert response.status_code == 200 and int(response.headers["Content-Length"]) == size
    received, peak = 0, before
    for piece in response.response:
        received += len(piece)
        peak = max(peak, _rss_mb())
    response.close()
    assert received == size
    assert peak - before < 25, f"RSS grew {peak - before:.1f} MB while streaming 100 MB"


def test_a_signing_key_the_encryption_key_cannot_read_is_410_not_500(app, player, played):
    from megaplan_plugin.models import Settings
    call, path = played
    with app.app_context():
        db.session.get(Settings, "demo").recording_key_enc = "not-a-fernet-token"
        db.session.commit()
    response = player.get(path)
    assert response.status_code == 410 and "больше не действуют" in response.text


# -- plays are counted in memory and written once a second (web/play_counts.py) ----------------

def test_plays_from_many_players_at_once_are_counted_exactly_while_the_writer_runs(app, played):
    """Real threads fetch whole while the writer flushes every few milliseconds: every play is
    written, none twice."""
    call, path = played
    counts = app.extensions["megaplan"].plays
    counts.close()
    counts = app.extensions["megaplan"].plays = PlayCounts(interval=0.002)
    players, rounds = 8, 12  # within the per-link rate limit of a minute
    barrier = threading.Barrier(players)

    def listen(_):
        client = app.test_client()
        barrier.wait()
        return [client.get(path).status_code for _ in range(rounds)]

    with ThreadPoolExecutor(players) as pool:
        statuses = [s for got in pool.map(listen, range(players)) for s in got]
    assert statuses == [200] * players * rounds
    counts.close()
    assert _plays(app, call.call_id) == players * rounds


def test_plays_a_failed_write_kept_are_written_once_when_the_database_is_back(app, played, tmp_path):
    call, path = played
    counts = app.extensions["megaplan"].plays
    counts.flush()
    with app.app_context():
        row_id = db.session.execute(db.select(OutboxEntry.id).filter_by(call_id=call.call_id)).scalar_one()
        engine = db.engine
    away = create_engine(f"sqlite:///{tmp_path}/no-such-folder/cabinet.db")  # every connect fails
    for _ in range(3):
        counts.add(away, row_id)
    assert counts.flush() == 0  # not written, kept
    assert counts.flush() == 0
    counts.add(engine, row_id)  # the next play comes with a database that answers
    assert counts.flush() == 4
    assert counts.flush() == 0  # nothing left to add twice
    assert _plays(app, call.call_id) == 4


def test_plays_are_written_when_the_app_stops(app, player, played):
    call, path = played
    assert player.get(path).status_code == 200
    assert player.get(path).status_code == 200
    app.extensions["megaplan"].dispose()  # what tearing the app down does; no flush asked for
    with app.app_context():
        assert db.session.execute(db.select(OutboxEntry.recording_plays)
                                  .filter_by(call_id=call.call_id)).scalar_one() == 2
