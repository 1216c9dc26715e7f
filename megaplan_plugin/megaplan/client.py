"""The Megaplan API v3 client: a ``requests.Session`` wrapper, free of Flask.

Errors are typed (``errors.py``); callers decide about retries. Nothing here logs a password
or a token: only method, path, status and Megaplan's request id.
"""
from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator

import requests

from megaplan_plugin import phones

from . import unconfirmed
from .auth import MemoryTokenStore, Tokens, TokenStore
from .capture import Capture
from .errors import MegaplanAuthError, MegaplanError, MegaplanTransientError, NotMegaplanError
from .session import megaplan_session
from .transport import build_url, unwrap
from .values import contact_phone, contractor_phones, link

log = logging.getLogger(__name__)
TOKEN_PATH = "/api/v3/auth/access_token"
PAGE_SIZE = 100
EMPLOYEE_FIELDS = ["firstName", "lastName", "middleName", "name", "position", "contactInfo",
                   *unconfirmed.EMPLOYEE_ABSENCE_FIELDS]


class MegaplanClient:
    def __init__(self, base_url: str, username: str, password: str, *,
                 token_store: TokenStore | None = None, timeout=(3.05, 15),
                 session: requests.Session | None = None, user_agent: str = "megafon-megaplan/0.1",
                 allow_http: bool | None = None, capture: Capture | None = None):
        self.base_url = base_url.rstrip("/")
        self.capture = capture
        self.username = username
        self._password = password
        self.tokens = token_store or MemoryTokenStore()
        self.timeout = timeout
        if allow_http is None:
            # Only a test or sandbox set-up ever stores an http:// address (normalize_domain
            # refuses it otherwise); callers that know the setting pass it.
            allow_http = not self.base_url.startswith("https://")
        # Never follows redirects; in production, https to vetted public addresses only.
        self.session = session or megaplan_session(allow_http=allow_http)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json",
                                     "X-USE-INCLUDED-RESPONSE": "true"})
        self._auth_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MegaplanClient({self.base_url!r}, {self.username!r})"

    # -- auth ---------------------------------------------------------------------------------
    def _token_request(self, form: dict) -> Tokens:
        try:
            response = self.session.post(self.base_url + TOKEN_PATH, data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            raise MegaplanTransientError(f"Megaplan unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise MegaplanTransientError("token endpoint failed", status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not (body.get("access_token") or body.get("error")):
            raise NotMegaplanError("the token endpoint gave no OAuth answer", status=response.status_code)
        if response.status_code != 200 or "access_token" not in body:
            error = body.get("error") if isinstance(body, dict) else None
            raise MegaplanAuthError(
                body.get("error_description") or error or "authentication refused",
                status=response.status_code)
        return Tokens.from_response(body)

    def _password_grant(self, replaced: Tokens | None) -> Tokens:
        log.info("megaplan: logging in as %s at %s", self.username, self.base_url)
        new = self._token_request({"grant_type": "password", "username": self.username,
                                   "password": self._password})
        return self.tokens.save(new, replaced)

    def _refresh(self, current: Tokens) -> Tokens:
        if current.refresh_token:
            try:
                new = self._token_request({"grant_type": "refresh_token",
                                           "refresh_token": current.refresh_token})
                return self.tokens.save(new, current)
            except MegaplanAuthError:
                # Rotated by another worker? Its new pair is in the store, use that.
                stored = self.tokens.load(fresh=True)
                if stored is not None and stored.refresh_token != current.refresh_token:
                    return stored
        return self._password_grant(current)

    def access_token(self, *, force_refresh_of: Tokens | None = None) -> Tokens:
        """A usable access token; only a refresh or a login takes the locks (single flight).

        Refresh tokens rotate: two refreshes of one pair would leave one side with a dead
        refresh token. The store's lock (shared by every process for a stored credential)
        makes the refresh one request, and whoever waited for it reuses its result.
        """
        tokens = self.tokens.load()
        if tokens is not None and force_refresh_of is None and \
                not tokens.expiring(unconfirmed.REFRESH_MARGIN_SECONDS):
            return tokens
        with self._auth_lock, self.tokens.refresh_lock():
            tokens = self.tokens.load(fresh=True)
            if tokens is None:
                return self._password_grant(None)
            if force_refresh_of is not None and tokens.access_token != force_refresh_of.access_token:
                return tokens  # someone refreshed while we waited for the lock
            if force_refresh_of is not None or tokens.expiring(unconfirmed.REFRESH_MARGIN_SECONDS):
                return self._refresh(tokens)
            return tokens

    # -- requests -----------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict | None = None, json_body=None):
        if self.capture is not None:
            self.capture.write(method, path, params, json_body)
        tokens = self.access_token()
        response = self._send(method, path, params, json_body, tokens)
        # A 401 asks for a fresh token: the one another thread got meanwhile, else our own
        # refresh. That one may be dead too (Megaplan expiring tokens twice in a row): a second
        # 401 makes this client refresh again, still one refresh at a time per credential.
        for _ in range(2):
            if response.status_code != 401:
                break
            tokens = self.access_token(force_refresh_of=tokens)
            response = self._send(method, path, params, json_body, tokens)
        try:
            return unwrap(response)
        except MegaplanError as exc:
            # a lookup that finds nothing is an answer, not a problem: not a warning in the log
            quiet = method == "GET" and exc.status in unconfirmed.NOT_FOUND_STATUSES
            log.log(logging.DEBUG if quiet else logging.WARNING, "megaplan %s %s → %s%s", method, path,
                    exc.status, f" (request {exc.request_id})" if exc.request_id else "")
            raise

    def _send(self, method, path, params, json_body, tokens: Tokens, *, data=None,
              content_type: str | None = None) -> requests.Response:
        url = build_url(self.base_url, path, params)
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            return self.session.request(method, url, json=json_body, data=data, timeout=self.timeout,
                                        headers=headers)
        except requests.Timeout:
            raise MegaplanTransientError(f"timeout on {method} {path}") from None
        except requests.RequestException as exc:
            raise MegaplanTransientError(f"{type(exc).__name__} on {method} {path}") from None

    def get(self, path: str, params: dict | None = None):
        return self.request("GET", path, params=params)

    def post(self, path: str, body):
        return self.request("POST", path, json_body=body)

    def iterate(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a list, page by page (``limit`` + ``pageAfter``; sorted only where
        ``unconfirmed.LIST_SORT`` says so)."""
        query = dict(params or {}, limit=PAGE_SIZE)
        if unconfirmed.LIST_SORT:
            query["sortBy"] = unconfirmed.LIST_SORT
        while True:
            page = self.get(path, query) or []
            yield from page
            if len(page) < PAGE_SIZE:
                return
            last = page[-1]
            query["pageAfter"] = link(last["contentType"], last["id"])

    # -- typed calls --------------------------------------------------------------------------
    def current_user(self) -> dict:
        return self.get("/api/v3/currentUser")

    def employees(self) -> Iterator[dict]:
        return self.iterate("/api/v3/employee", {"fields": EMPLOYEE_FIELDS})

    def todo_categories(self) -> Iterator[dict]:
        return self.iterate("/api/v3/todoCategory", {"fields": ["name", "masterType"]})

    def call_user_configs(self) -> Iterator[dict]:
        return self.iterate("/api/v3/callUserConfig")

    def internal_numbers(self) -> dict[str, str]:
        """Megaplan employee id → telephony internal number ("sip:101@host" read as "101")."""
        numbers = {}
        for config in self.call_user_configs():
            employee, number = config.get("employee") or {}, config.get("internalNumber")
            if employee.get("id") and number:
                numbers[str(employee["id"])] = _bare_number(str(number))
        return numbers

    def save_call_user_config(self, employee_id, internal_number: str) -> dict:
        return self.post("/api/v3/callUserConfig", {
            "contentType": "CallUserConfig", "employee": link("Employee", employee_id),
            "internalNumber": internal_number})

    def call_route(self, phone: str) -> dict:
        route = self.get("/api/v3/callRoute", {"phone": unconfirmed.phone_for_megaplan(phone)}) or {}
        return {**route, "employees": unconfirmed.route_employees(route.get("employees"))}

    def find_contractors_by_phone(self, phone: str) -> list[dict]:
        """Clients with this number, however it is written in Megaplan (matched on the national
        number); the server's search is fuzzy and its cards short, so ask and filter here."""
        wanted = phones.national(phone)
        found = self.get(unconfirmed.CONTRACTOR_SEARCH_PATH, {
            "q": phones.digits(phone), "limit": 10, "fields": unconfirmed.CONTRACTOR_FIELDS["search"]}) or []
        return [c for c in found if wanted and wanted in contractor_phones(c)]

    def open_deals(self) -> Iterator[dict]:
        """Every open deal of the account, with its client, manager and last change."""
        return (deal for deal in self.iterate(unconfirmed.DEALS_PATH, {"fields": unconfirmed.DEAL_FIELDS})
                if unconfirmed.deal_is_open(deal))

    def contractors(self, kind: str) -> Iterator[dict]:
        """Every client of one kind ("contractorHuman" or "contractorCompany") with its phones."""
        return self.iterate(f"/api/v3/{kind}", {"fields": unconfirmed.CONTRACTOR_FIELDS[kind]})

    def create_contractor_human(self, first_name: str, last_name: str, phone: str,
                                responsible_id=None, **extra) -> dict:
        body = {"contentType": "ContractorHuman", "firstName": first_name, "lastName": last_name,
                "contactInfo": [contact_phone(phones.digits(phone))], **extra}
        if responsible_id:
            body["responsibles"] = [link("Employee", responsible_id)]
        return self.post("/api/v3/contractorHuman", body)

    def create_call(self, fields: dict) -> dict:
        return self.post("/api/v3/callInfo", {"contentType": "CallInfo", **fields})

    def update_call(self, call_id, fields: dict) -> dict:
        return self.post(f"/api/v3/callInfo/{call_id}", {"contentType": "CallInfo", **fields})

    def get_call_by_provider(self, provider_id: str) -> dict | None:
        try:
            return self.get("/api/v3/callInfo/provider", {"providerId": provider_id})
        except MegaplanError as exc:
            if exc.status in unconfirmed.NOT_FOUND_STATUSES:
                return None
            raise

    def save_call_history(self, calls: list[dict]) -> list[dict]:
        return self.post("/api/v3/callInfo/history", [{"contentType": "CallInfo", **c} for c in calls])

    def call_todos(self, call_id) -> list[dict]:
        return self.get(f"/api/v3/callInfo/{call_id}/todos") or []

    def create_call_todo(self, call_id, fields: dict) -> dict:
        return self.post(f"/api/v3/callInfo/{call_id}/todos", {"contentType": "Todo", **fields})

    def upload_file(self, file_name: str, content_type: str, chunks, length: int) -> dict:
        """Upload a file (streamed) and return its File, to put into an entity's `attaches`."""
        body = _Multipart(unconfirmed.UPLOAD_PART, file_name, content_type, chunks, length)
        if self.capture is not None:
            self.capture.write("POST", unconfirmed.UPLOAD_PATH, None, {"file": file_name, "length": length})
        tokens = self.access_token()
        response = self._send("POST", unconfirmed.UPLOAD_PATH, None, None, tokens,
                              data=body, content_type=body.content_type)
        if response.status_code == 401:
            # The body streams once, so request()'s send-again cannot apply: refresh the token
            # and let the job send the file again, as after any transient failure.
            self.access_token(force_refresh_of=tokens)
            raise MegaplanTransientError("the upload's access token was refused; refreshed for the next try")
        files = unwrap(response)
        if not isinstance(files, list) or not files or not isinstance(files[0], dict):
            raise MegaplanTransientError("the upload answered no file")
        return files[0]

    def attach_to_todo(self, todo_id, file_id) -> dict:
        # the id in the body too: without it the same address creates a new todo (pitfall 9)
        return self.post(f"/api/v3/todo/{todo_id}", {"contentType": "Todo", "id": str(todo_id),
                                                      "attaches": [link("File", file_id)]})

    def attach_to_contractor(self, contractor: dict, file_id) -> dict:
        """Add a file to a client card's attachments (read first: the list is replaced)."""
        kind = "contractorCompany" if contractor["contentType"] == "ContractorCompany" else "contractorHuman"
        card = self.get(f"/api/v3/{kind}/{contractor['id']}", {"fields": ["attaches"]}) or {}
        attaches = [link(a["contentType"], a["id"]) for a in card.get("attaches") or [] if isinstance(a, dict)]
        if any(a["id"] == str(file_id) for a in attaches):
            return card  # attached by a try whose answer was lost
        return self.post(f"/api/v3/{kind}/{contractor['id']}", {
            "contentType": contractor["contentType"], "id": str(contractor["id"]),
            "attaches": attaches + [link("File", file_id)]})

    def todo(self, todo_id, fields: list[str]) -> dict:
        return self.get(f"/api/v3/todo/{todo_id}", {"fields": fields}) or {}

    def add_todo_participant(self, todo_id, employee_id) -> None:
        self.post(f"/api/v3/todo/{todo_id}/participants",
                  {"contentType": "Participant", "subject": link("Employee", employee_id)})

    def comment_todo(self, todo_id, content: str) -> dict:
        return self.post(f"/api/v3/todo/{todo_id}/comments", {"contentType": "Comment", "content": content})

    def todo_comments(self, todo_id) -> list[dict]:
        return [c for c in self.iterate(f"/api/v3/todo/{todo_id}/comments") if c.get("contentType") == "Comment"]

    def finish_todo(self, todo_id, result_text: str) -> dict:
        """Finish a todo and leave ``result_text`` as its result comment, in one request."""
        return self.post(f"/api/v3/todo/{todo_id}/doAction", unconfirmed.todo_finish_action(result_text))


class _Multipart:
    """A multipart body of one file, streamed: its length is known, so requests sends a
    Content-Length and iterates the parts instead of reading the file into memory."""

    def __init__(self, part: str, file_name: str, content_type: str, chunks, length: int):
        boundary = secrets.token_hex(16)
        quoted = file_name.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")
        self.head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; "
                     f"filename=\"{quoted}\"\r\nContent-Type: {content_type}\r\n\r\n").encode("utf-8")
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.chunks, self.length = chunks, len(self.head) + length + len(self.tail)

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        yield self.head
        yield from self.chunks
        yield self.tail


def _bare_number(value: str) -> str:
    value = value.removeprefix("sip:")
    return value.split("@", 1)[0].strip()
