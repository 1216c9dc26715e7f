"""The telephony app's new secret never rides in a cookie: shown once from a server-side store."""
import base64
import re
import zlib

from host_stub.testing import post_form


def _session_payload(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    data = cookie.value.split(".")[0] if not cookie.value.startswith(".") else cookie.value[1:].split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    if cookie.value.startswith("."):
        raw = zlib.decompress(raw)
    return raw.decode()


def test_the_new_secret_is_shown_once_and_never_travels_in_the_session_cookie(app, configured):
    response = post_form(configured, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    assert response.status_code == 302
    payload = _session_payload(configured)
    page = configured.get(response.location).text
    secret = re.search(r'id="new-secret">([^<]+)<', page).group(1)
    assert len(secret) >= 20 and secret not in payload  # the cookie held a ticket, not the secret
    assert "больше он показан не будет" in page and "Копировать" in page
    again = configured.get("/plugins/megaplan/").text
    assert secret not in again and 'id="new-secret"' not in again  # shown once, then forgotten
    assert "••••••••" + secret[-4:] in again
    conn = app.extensions["megaplan"].redis
    assert all(secret.encode() not in (conn.get(k) or b"") for k in conn.keys("*")
               if conn.type(k) == b"string")


def test_a_ticket_of_another_account_shows_nothing(app, configured):
    from megaplan_plugin.web import one_time
    with app.test_request_context():
        ticket = one_time.keep("other", "their-secret")
        assert one_time.take("demo", ticket) is None
        assert one_time.take("other", ticket) == "their-secret"
        assert one_time.take("other", ticket) is None
