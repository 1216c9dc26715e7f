"""Where the Megaplan client may send a password or a token, and what it says when it cannot.

Everything here talks to real servers on 127.0.0.1 started by the test. Names such as
``acme.megaplan.ru`` are answered by a fake ``socket.getaddrinfo``; a connection the client
opens to a "public" address is diverted to a local server at the lowest level
(``session._open_socket``), so no packet ever leaves this machine.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
import struct
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host_stub.megaplan_sandbox import serve
from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD
from megaplan_plugin.megaplan import (
    InvalidDomain,
    MegaplanClient,
    MegaplanTransientError,
    MemoryTokenStore,
    Tokens,
    session,
)
from megaplan_plugin.megaplan.domain import check_domain_addresses
from megaplan_plugin.megaplan.errors import (
    MegaplanDestinationRefused,
    MegaplanDomainNotFound,
    MegaplanRedirectError,
    MegaplanUnreachable,
)
from megaplan_plugin.megaplan.netguard import check_url, is_public_address
from megaplan_plugin.megaplan.session import megaplan_session

PASSWORD = "pa55-secret-word"
ACCESS = "access-secret-token"
REFRESH = "refresh-secret-token"
TOKEN_BODY = {"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 3600}
ME_BODY = {"meta": {"status": 200, "errors": []}, "data": {"contentType": "Employee", "id": "1000001"}}


# -- local servers -----------------------------------------------------------------------------
class HttpServer:
    """A tiny HTTP(S) server on 127.0.0.1 recording every request; ``answer`` decides the reply."""

    def __init__(self, answer=None, tls: ssl.SSLContext | None = None):
        self.requests: list[dict] = []
        self.answer = answer or (lambda req: (200, {}, ME_BODY))
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                req = {"method": self.command, "path": self.path, "headers": dict(self.headers),
                       "body": self.rfile.read(length).decode("utf-8", "replace")}
                recorder.requests.append(req)
                status, headers, body = recorder.answer(req)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class RawServer:
    """A TCP listener on 127.0.0.1: ``record`` keeps what arrives, ``reset`` reads the request
    and answers with a TCP RST, ``silent`` accepts and never answers."""

    def __init__(self, mode: str):
        self.mode = mode
        self.connections = 0
        self.received = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            if self.mode == "silent":
                self.held.append(conn)
                continue
            try:
                self.received += conn.recv(65536)
            except OSError:
                pass
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fake DNS and the diverted connect ---------------------------------------------------------
_real_getaddrinfo = socket.getaddrinfo


class FakeDns:
    def __init__(self):
        self.names: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        host = host.decode() if isinstance(host, bytes) else host
        self.lookups.append(host)
        if host in self.names:
            out = []
            for address in self.names[host]:
                ip = ipaddress.ip_address(address)
                if ip.version == 4:
                    out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
                else:
                    out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            return out
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return _real_getaddrinfo(host, port, family, type, proto, flags)


@pytest.fixture
def dns(monkeypatch):
    fake = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def diverted(monkeypatch):
    """Every socket the guarded transport opens goes to ``diverted.port`` on 127.0.0.1;
    ``diverted.opened`` lists the addresses the client meant to reach."""

    class Divert:
        port: int | None = None
        opened: list[tuple] = []

    real = session._open_socket

    def open_socket(info, timeout, source_address, socket_options):
        Divert.opened.append(info[4][:2])
        if Divert.port is None:
            raise ConnectionRefusedError(111, "no local target")
        local = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", Divert.port))
        return real(local, timeout, source_address, socket_options)

    Divert.opened = []
    monkeypatch.setattr(session, "_open_socket", open_socket)
    return Divert


def _client(base_url: str, *, allow_http: bool, tokens: Tokens | None = None, timeout=(1, 1)):
    return MegaplanClient(base_url, "admin@example.ru", PASSWORD, timeout=timeout,
                          token_store=MemoryTokenStore(tokens),
                          session=megaplan_session(allow_http=allow_http))


# -- 1. redirects are never followed -----------------------------------------------------------
@pytest.mark.parametrize("status", [307, 308, 301, 302, 303])
def test_a_redirected_token_post_is_an_error_and_the_password_goes_nowhere(status):
    with HttpServer() as elsewhere:
        target = f"{elsewhere.url}/api/v3/auth/access_token"
        with HttpServer(lambda req: (status, {"Location": target}, None)) as megaplan:
            client = _client(megaplan.url, allow_http=True)
            with pytest.raises(MegaplanRedirectError) as info:
                client.current_user()
    assert not info.value.transient and info.value.status == status
    assert "перенаправлением на" in info.value.message and "проверьте домен" in info.value.message
    assert f"127.0.0.1:{elsewhere.port}" in info.value.message
    assert [r["method"] for r in megaplan.requests] == ["POST"]
    assert PASSWORD in megaplan.requests[0]["body"]  # it did reach the configured domain…
    assert elsewhere.requests == []  # …and nothing else


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_api_call_is_an_error_and_the_token_goes_nowhere(status):
    with HttpServer() as elsewhere:
        def answer(req):
            if req["path"].startswith("/api/v3/auth/"):
                return 200, {}, TOKEN_BODY
            return status, {"Location": elsewhere.url + "/api/v3/currentUser"}, None
        with HttpServer(answer) as megaplan:
            client = _client(megaplan.url, allow_http=True)
            with pytest.raises(MegaplanRedirectError) as info:
                client.current_user()
    assert info.value.status == status and not info.value.transient
    assert [r["method"] for r in megaplan.requests] == ["POST", "GET"]
    assert elsewhere.requests == []


def test_the_redirect_message_names_only_the_target_host():
    location = "https://evil.example:8443/steal?token=abc&password=x"
    with HttpServer(lambda req: (302, {"Location": location}, None)) as megaplan:
        with pytest.raises(MegaplanRedirectError) as info:
            _client(megaplan.url, allow_http=True).current_user()
    assert "https://evil.example:8443" in info.value.message
    assert "steal" not in info.value.message and "abc" not in info.value.message


# -- 2. one message for every connection failure -----------------------------------------------
@contextmanager
def _failing_megaplan(kind: str):
    if kind == "refused":
        yield f"http://127.0.0.1:{_closed_port()}"
        return
    with RawServer("reset" if kind == "reset" else "silent") as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize("phase", ["token", "api"])
def test_refused_reset_and_timed_out_read_the_same(phase, caplog):
    caplog.set_level(logging.DEBUG, logger="megaplan_plugin.megaplan")
    messages = {}
    for kind in ("refused", "reset", "timeout"):
        with _failing_megaplan(kind) as url:
            port = url.rsplit(":", 1)[1]
            tokens = Tokens(ACCESS, REFRESH, None) if phase == "api" else None
            client = _client(url, allow_http=True, tokens=tokens, timeout=(0.5, 0.3))
            with pytest.raises(MegaplanUnreachable) as info:
                client.current_user()
        error = info.value
        assert isinstance(error, MegaplanTransientError) and error.transient
        for detail in (port, "Errno", "refused", "reset", "Refused", "Reset", "Timeout", "timed out", "111", "104"):
            assert detail not in str(error), (kind, detail, str(error))
        messages[kind] = (str(error), error.message)
    assert len(set(messages.values())) == 1, messages
    assert "Мегаплан не отвечает" in messages["refused"][1]
    # The details are in the debug log, and nothing secret is.
    assert "ConnectionRefusedError" in caplog.text
    for secret in (PASSWORD, ACCESS, REFRESH):
        assert secret not in caplog.text


# -- 3. production mode: https to public addresses only, checked on every request ---------------
INTERNAL = ["127.0.0.1", "127.8.9.10", "10.0.0.5", "172.16.3.4", "172.31.255.1", "192.168.0.10",
            "169.254.169.254", "169.254.1.1", "100.64.1.1", "100.127.255.254", "0.0.0.0",
            "224.0.0.251", "239.255.255.250", "240.0.0.1", "255.255.255.255",
            "::1", "::", "fe80::1", "fd12:3456::1", "fc00::1", "ff02::1", "fec0::1",
            "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1"]


@pytest.mark.parametrize("address", INTERNAL)
def test_a_domain_resolving_to_an_internal_address_is_refused_before_anything_is_sent(
        address, dns, diverted):
    dns.names["evil.megaplan.ru"] = [address]
    with RawServer("record") as listener:
        diverted.port = listener.port
        client = _client("https://evil.megaplan.ru", allow_http=False)
        with pytest.raises(MegaplanDestinationRefused) as info:
            client.current_user()
    assert info.value.message == "Домен указывает на внутренний адрес"
    assert not info.value.transient
    assert diverted.opened == [] and listener.connections == 0
    assert not is_public_address(address)


def test_one_internal_address_among_public_ones_is_enough_to_refuse(dns, diverted):
    dns.names["evil.megaplan.ru"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "10.1.2.3"]
    with pytest.raises(MegaplanDestinationRefused, match="внутренний адрес"):
        _client("https://evil.megaplan.ru", allow_http=False).current_user()
    assert diverted.opened == []


def test_a_name_pointing_at_a_local_server_never_reaches_it(dns):
    """No diversion here: without the guard this request would really arrive at the listener."""
    with RawServer("record") as listener:
        dns.names["evil.megaplan.ru"] = ["127.0.0.1"]
        with pytest.raises(MegaplanDestinationRefused, match="внутренний адрес"):
            _client(f"https://evil.megaplan.ru:{listener.port}", allow_http=False).current_user()
        time.sleep(0.2)
    assert listener.connections == 0 and listener.received == b""


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "169.254.169.254", "10.0.0.1", "[fe80::1]"])
def test_an_ip_literal_domain_is_refused(host, dns):
    with RawServer("record") as listener:
        port = f":{listener.port}" if host == "127.0.0.1" else ""
        with pytest.raises(MegaplanDestinationRefused, match="внутренний адрес"):
            _client(f"https://{host}{port}", allow_http=False).current_user()
    assert listener.connections == 0


def test_http_is_refused_in_production_mode(dns, diverted):
    with serve() as sandbox:
        client = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD,
                                session=megaplan_session(allow_http=False))
        with pytest.raises(MegaplanDestinationRefused) as info:
            client.current_user()
        assert sandbox.state.request_count("POST", "/api/v3/auth/access_token") == 0
    assert "только по https" in info.value.message
    dns.names["acme.megaplan.ru"] = ["93.184.216.34"]
    with pytest.raises(MegaplanDestinationRefused, match="только по https"):
        _client("http://acme.megaplan.ru", allow_http=False).current_user()
    assert diverted.opened == []


def test_a_name_that_does_not_resolve_is_domain_not_found(dns, diverted):
    with pytest.raises(MegaplanDomainNotFound) as info:
        _client("https://nosuch.megaplan.ru", allow_http=False).current_user()
    assert info.value.message == "Домен не найден"
    assert diverted.opened == []


def test_public_addresses_pass_the_check(dns):
    dns.names["acme.megaplan.ru"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    assert check_url("https://acme.megaplan.ru", allow_http=False) is None
    assert dns.lookups == ["acme.megaplan.ru"]
    for address in ("93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "2002:5db8:d822::1"):
        assert is_public_address(address), address


def test_a_public_domain_is_connected_at_its_vetted_address_with_its_name_for_tls(dns, diverted):
    dns.names["acme.megaplan.ru"] = ["93.184.216.34"]
    with RawServer("record") as listener:
        diverted.port = listener.port
        with pytest.raises(MegaplanUnreachable):  # the listener is no TLS server
            _client("https://acme.megaplan.ru", allow_http=False).current_user()
    assert diverted.opened == [("93.184.216.34", 443)]
    assert listener.received[:1] == b"\x16"  # a TLS handshake…
    assert b"acme.megaplan.ru" in listener.received  # …asking for the domain (SNI)


def test_dns_changing_between_the_check_and_the_connect_is_refused(dns, diverted, monkeypatch):
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    real_call = dns.__call__

    def rebinding(host, *args):
        if host == "acme.megaplan.ru":
            dns.names[host] = next(answers, ["127.0.0.1"])
        return real_call(host, *args)
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with RawServer("record") as listener:
        diverted.port = listener.port
        with pytest.raises(MegaplanDestinationRefused, match="внутренний адрес"):
            _client("https://acme.megaplan.ru", allow_http=False).current_user()
    assert diverted.opened == [] and listener.connections == 0


@pytest.fixture
def tls_megaplan(tmp_path):
    """A TLS fake Megaplan on 127.0.0.1 whose certificate names acme.megaplan.ru."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme.megaplan.ru")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("acme.megaplan.ru")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)

    def answer(req):
        return (200, {}, TOKEN_BODY) if req["path"].startswith("/api/v3/auth/") else (200, {}, ME_BODY)
    with HttpServer(answer, tls=context) as server:
        server.cert_path = str(cert_path)
        yield server


def test_the_check_runs_on_every_request_not_only_the_first(dns, diverted, tls_megaplan):
    dns.names["acme.megaplan.ru"] = ["93.184.216.34"]
    diverted.port = tls_megaplan.port
    session = megaplan_session(allow_http=False)
    session.verify = tls_megaplan.cert_path
    client = MegaplanClient("https://acme.megaplan.ru", "admin@example.ru", PASSWORD, session=session)
    assert client.current_user()["id"] == "1000001"
    assert client.current_user()["id"] == "1000001"
    assert diverted.opened == [("93.184.216.34", 443)]  # one kept-alive connection…
    assert dns.lookups.count("acme.megaplan.ru") >= 3  # …yet the name was checked for each request
    served = len(tls_megaplan.requests)
    assert served == 3  # token, currentUser, currentUser

    dns.names["acme.megaplan.ru"] = ["10.0.0.7"]  # the DNS answer changes
    with pytest.raises(MegaplanDestinationRefused, match="внутренний адрес"):
        client.current_user()
    assert len(tls_megaplan.requests) == served  # refused before the kept-alive connection was used


def test_the_settings_form_check_speaks_russian(dns):
    dns.names["evil.megaplan.ru"] = ["169.254.169.254"]
    dns.names["acme.megaplan.ru"] = ["93.184.216.34"]
    with pytest.raises(InvalidDomain, match="^Домен указывает на внутренний адрес$"):
        check_domain_addresses("https://evil.megaplan.ru")
    with pytest.raises(InvalidDomain, match="^Домен не найден$"):
        check_domain_addresses("https://nosuch.megaplan.ru")
    with pytest.raises(InvalidDomain, match="только по https"):
        check_domain_addresses("http://acme.megaplan.ru")
    check_domain_addresses("https://acme.megaplan.ru")
    check_domain_addresses("http://127.0.0.1:5001", allow_http=True)  # tests and the sandbox


# -- 4. MEGAPLAN_ALLOW_HTTP keeps the sandbox working --------------------------------------------
def test_the_guarded_session_in_allow_http_mode_works_against_the_sandbox():
    with serve() as sandbox:
        client = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD,
                                session=megaplan_session(allow_http=True))
        assert client.current_user()["id"] == "1000001"
        assert len(list(client.employees())) == 5
        sandbox.state.fail_next(1, status=503)
        with pytest.raises(MegaplanTransientError) as info:
            client.current_user()
        assert info.value.status == 503


def test_the_plugins_own_clients_use_the_guarded_session_by_default(app, logged_in, enable_plugin):
    """The settings form and the jobs build clients without passing a session: still guarded."""
    from host_stub.testing import post_form
    enable_plugin()
    with HttpServer() as elsewhere:
        target = f"{elsewhere.url}/api/v3/auth/access_token"
        with HttpServer(lambda req: (307, {"Location": target}, None)) as megaplan:
            response = post_form(logged_in, "/plugins/megaplan/credentials/new", {
                "title": "Перенаправление", "login": "admin@x.ru", "password": PASSWORD,
                "domain": megaplan.url})
    assert response.status_code == 400
    assert "перенаправлением" in response.get_data(as_text=True)
    assert elsewhere.requests == []  # the password never left for the redirect target
