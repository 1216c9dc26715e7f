"""The sandbox's memory: entities, tokens, injected faults and what it was asked."""
from __future__ import annotations

import copy
import secrets
import threading
import time
from collections import deque

from . import seed
from megaplan_plugin import phones

FIELDS = {
    "ContractorHuman": {"firstName", "lastName", "middleName", "company", "gender", "position",
                        "contactInfo", "responsibles", "description", "advertisingWay", "type", "status",
                        "attaches"},
    "ContractorCompany": {"name", "contactInfo", "responsibles", "contacts", "description",
                          "advertisingWay", "type", "status", "attaches"},
    "CallInfo": {"fromPhone", "toPhone", "fromUser", "toUser", "providerId", "timeFrom", "timeTo",
                 "type", "state", "recordLinks"},
    "Todo": {"name", "description", "responsible", "participants", "relations", "category", "attaches"},
    "CallUserConfig": {"employee", "internalNumber", "settings"},
    "Deal": {"name", "description", "contractor", "contact", "manager", "program", "state", "result"},
}
COLLECTIONS = {"Employee": "employees", "ContractorHuman": "contractors",
               "ContractorCompany": "contractors", "CallInfo": "calls", "Todo": "todos",
               "CallUserConfig": "call_user_configs", "File": "files", "Deal": "deals"}


class SandboxState:
    def __init__(self, seed: bool = True):
        self.lock = threading.RLock()
        self.token_ttl = 172800
        self.reset(seed=seed)

    # -- data -----------------------------------------------------------------------------------
    def reset(self, seed: bool = True) -> None:
        with self.lock:
            self.employees: dict[str, dict] = {}
            self.call_user_configs: dict[str, dict] = {}
            self.contractors: dict[str, dict] = {}
            self.calls: dict[str, dict] = {}
            self.todos: dict[str, dict] = {}
            self.deals: dict[str, dict] = {}
            self.logins: dict[str, tuple[str, str]] = {}
            self.access_tokens: dict[str, tuple[str, float]] = {}
            self.refresh_tokens: dict[str, str] = {}
            self.widget_events: list[dict] = []
            self.telephony_app: dict[str, str] = {}
            self.grants: list[str | None] = []  # grant_type of every token request, in order
            self.requests: deque = deque(maxlen=20000)
            # (method, path, violation) of every request refused for breaking Megaplan's schema
            self.schema_violations: list = []
            self.files: dict[str, dict] = {}  # uploads (POST /api/file): name, type, size, sha256
            self._ids = {"Employee": 1000100, "ContractorHuman": 2000000, "ContractorCompany": 3000000,
                         "CallInfo": 4000000, "Todo": 5000000, "CallUserConfig": 6000000, "Comment": 7000000, "Vacation": 9500000, "File": 8000000,
                         "Deal": 9000000}
            self._faults: list[dict] = []
            self.dead_tokens_next = 0  # access tokens issued already expired (expire_issued_next)
            self._lost_answer_faults: list[dict] = []
            self.lost_answers = 0  # answers withheld so far
            self.lost_answer_requests: list[tuple[str, str]] = []  # (method, path) of each
            self.latency = 0.0
            self.outage_until = 0.0
            if seed:
                self._seed()

    def _seed(self) -> None:
        username, password, employee_id = seed.LOGIN
        for emp_id, first, last, position, number in seed.EMPLOYEES:
            self.add_employee(first, last, position=position, internal_number=number, employee_id=emp_id)
        self.add_login(username, password, employee_id)
        made = [self.add_contractor(content_type, fields, phone, responsible)
                for content_type, fields, phone, responsible in seed.CLIENTS]
        for client_index, name, manager_id in seed.DEALS:
            self.add_deal(made[client_index]["id"], name, manager_id)

    def next_id(self, content_type: str) -> str:
        with self.lock:
            self._ids[content_type] += 1
            return str(self._ids[content_type])

    def add_login(self, username: str, password: str, employee_id: str) -> None:
        self.logins[username] = (password, employee_id)

    def add_employee(self, first: str, last: str, *, position: str = "Менеджер",
                     internal_number: str | None = None, employee_id: str | None = None) -> dict:
        with self.lock:
            employee_id = employee_id or self.next_id("Employee")
            employee = {"contentType": "Employee", "id": employee_id, "firstName": first,
                        "lastName": last, "middleName": "", "name": f"{first} {last}",
                        "position": position, "isWorking": True, "contactInfo": []}
            self.employees[employee_id] = employee
            if internal_number:
                self.set_internal_number(employee_id, internal_number)
            return employee

    def add_employees(self, count: int) -> None:
        for n in range(count):
            self.add_employee(f"Сотрудник{n}", "Массовый")

    def set_internal_number(self, employee_id: str, number: str | None) -> None:
        with self.lock:
            for config_id, config in list(self.call_user_configs.items()):
                if config["employee"]["id"] == employee_id:
                    del self.call_user_configs[config_id]
            if number:
                config_id = self.next_id("CallUserConfig")
                self.call_user_configs[config_id] = {
                    "contentType": "CallUserConfig", "id": config_id, "internalNumber": number,
                    "employee": {"contentType": "Employee", "id": employee_id}, "settings": "{}"}

    def remove_call_user_config(self, employee_id: str) -> None:
        self.set_internal_number(employee_id, None)

    def set_absence(self, employee_id: str, *, working: bool = True, fire_day: str | None = None,
                    vacation: tuple[str, str] | None = None) -> None:
        """What Megaplan says of an employee's absence: ``isWorking``, ``fireDay`` (ISO date)
        and the ``nearestVacation`` (first and last ISO dates); None clears it."""
        with self.lock:
            employee = self.employees[employee_id]
            employee["isWorking"] = working
            employee.pop("fireDay", None)
            employee.pop("nearestVacation", None)
            if fire_day:
                employee["fireDay"] = {"contentType": "DateTime", "value": f"{fire_day}T00:00:00+03:00"}
            if vacation:
                employee["nearestVacation"] = {
                    "contentType": "Vacation", "id": self.next_id("Vacation"), "name": "Отпуск",
                    "firstDay": _date_only(vacation[0]), "lastDay": _date_only(vacation[1])}

    def add_deal(self, contractor_id: str, name: str, manager_id: str | None = None,
                 result: str = "active", updated: str | None = None) -> dict:
        """A deal of a client (``result``: active, positive or negative), changed at ``updated``."""
        contractor = self.contractors[str(contractor_id)]
        body = {"name": name, "program": {"contentType": "Program", "id": seed.PROGRAM_ID},
                "contractor": {"contentType": contractor["contentType"], "id": contractor["id"]},
                "result": result}
        if manager_id:
            body["manager"] = {"contentType": "Employee", "id": manager_id}
        deal = self.create("Deal", body)
        if updated:
            deal["timeUpdated"] = {"contentType": "DateTime", "value": updated}
        return deal

    def add_contractor(self, content_type: str, fields: dict, phone: str | None = None,
                       responsible_id: str | None = None) -> dict:
        body = dict(fields)
        if phone:
            body["contactInfo"] = [{"contentType": "ContactInfo", "type": "phone", "value": phone,
                                    "isMain": True}]
        if responsible_id:
            body["responsibles"] = [{"contentType": "Employee", "id": responsible_id}]
        return self.create(content_type, body)

    def create(self, content_type: str, body: dict) -> dict:
        with self.lock:
            entity = {k: copy.deepcopy(v) for k, v in body.items() if k != "id"}
            entity["contentType"] = content_type
            entity["id"] = self.next_id(content_type)
            if content_type == "ContractorHuman":
                parts = [entity.get("lastName"), entity.get("firstName"), entity.get("middleName")]
                entity["name"] = " ".join(p for p in parts if p)
            entity.setdefault("timeCreated", {"contentType": "DateTime",
                                              "value": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())})
            if content_type == "Deal":
                entity.setdefault("timeUpdated", dict(entity["timeCreated"]))
            getattr(self, COLLECTIONS[content_type])[entity["id"]] = entity
            return entity

    def find(self, content_type: str, entity_id: str) -> dict | None:
        entity = getattr(self, COLLECTIONS[content_type]).get(str(entity_id))
        return entity if entity and entity["contentType"] == content_type else None

    def contractors_with_phone(self, phone: str) -> list[dict]:
        key = phones.digits(phone)
        return [c for c in self.contractors.values() if key and any(
            i.get("type") == "phone" and phones.digits(i.get("value", "")) == key
            for i in c.get("contactInfo") or [])]

    def internal_number_of(self, employee_id: str) -> str | None:
        return next((c["internalNumber"] for c in self.call_user_configs.values()
                     if c["employee"]["id"] == employee_id), None)

    # -- tokens ---------------------------------------------------------------------------------
    def issue_tokens(self, employee_id: str) -> dict:
        with self.lock:
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            born_dead = self.dead_tokens_next > 0
            self.dead_tokens_next -= born_dead
            self.access_tokens[access] = (employee_id, 0.0 if born_dead else time.time() + self.token_ttl)
            self.refresh_tokens[refresh] = employee_id
            return {"access_token": access, "expires_in": self.token_ttl, "token_type": "bearer",
                    "scope": None, "refresh_token": refresh}

    def rotate(self, refresh: str) -> dict | None:
        with self.lock:
            employee_id = self.refresh_tokens.pop(refresh, None)
            return self.issue_tokens(employee_id) if employee_id else None

    def user_of(self, access: str) -> str | None:
        with self.lock:
            entry = self.access_tokens.get(access)
            return entry[0] if entry and entry[1] > time.time() else None

    def revoke_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()
            self.refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens = {t: (e, 0.0) for t, (e, _) in self.access_tokens.items()}

    def expire_issued_next(self, n: int) -> None:
        """The next ``n`` access tokens are issued already expired (Megaplan expiring tokens
        again right after a refresh)."""
        with self.lock:
            self.dead_tokens_next = n

    # -- faults ---------------------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 500, path_prefix: str | None = None,
                  retry_after: int | None = None) -> None:
        with self.lock:
            self._faults.append({"left": n, "status": status, "prefix": path_prefix, "in_body": False,
                                 "retry_after": retry_after})

    def ok_with_error_next(self, n: int, status: int = 500) -> None:
        with self.lock:
            self._faults.append({"left": n, "status": status, "prefix": None, "in_body": True})

    def lose_answers_next(self, n: int, path_prefix: str | None = None, method: str | None = "POST",
                          delay: float | None = None) -> None:
        """The next ``n`` API requests with this method (``None``: any) and path prefix are
        handled as usual, then the client gets no answer: the connection is closed at once,
        or after ``delay`` seconds (a client with a shorter read timeout sees a timeout).
        For fault tests of "Megaplan did it, the client never heard" (see ``api.lose_answers``)."""
        with self.lock:
            self._lost_answer_faults.append({"left": n, "prefix": path_prefix, "delay": delay,
                                             "method": method.upper() if method else None})

    def _lost_answer_fault(self, method: str, path: str, take: bool) -> dict | None:
        with self.lock:
            for fault in self._lost_answer_faults:
                if fault["left"] > 0 and fault["method"] in (None, method) \
                        and (not fault["prefix"] or path.startswith(fault["prefix"])):
                    if take:
                        fault["left"] -= 1
                        self.lost_answers += 1
                        self.lost_answer_requests.append((method, path))
                    return fault
            return None

    def may_lose_answer(self, method: str, path: str) -> bool:
        return self._lost_answer_fault(method, path, take=False) is not None

    def take_lost_answer(self, method: str, path: str) -> dict | None:
        return self._lost_answer_fault(method, path, take=True)

    def set_latency(self, ms: float) -> None:
        self.latency = ms / 1000

    def outage(self, seconds: float) -> None:
        self.outage_until = time.time() + seconds

    def take_fault(self, path: str) -> dict | None:
        with self.lock:
            for fault in self._faults:
                if fault["left"] > 0 and (not fault["prefix"] or path.startswith(fault["prefix"])):
                    fault["left"] -= 1
                    return fault
            return None

    # -- inspection -----------------------------------------------------------------------------
    def request_count(self, method: str | None = None, path_prefix: str | None = None) -> int:
        return sum(1 for m, p, _ in list(self.requests)
                   if (method is None or m == method) and (path_prefix is None or p.startswith(path_prefix)))

    def dump(self) -> dict:
        with self.lock:
            return copy.deepcopy({
                "calls": list(self.calls.values()), "contractors": list(self.contractors.values()),
                "todos": list(self.todos.values()), "call_user_configs": list(self.call_user_configs.values()),
                "widget_events": self.widget_events, "requests": len(self.requests),
                "lost_answers": self.lost_answers})


def _date_only(iso: str) -> dict:
    """A DateOnly as Megaplan writes it: the month 0-based (its official example)."""
    year, month, day = (int(part) for part in iso.split("-"))
    return {"contentType": "DateOnly", "year": year, "month": month - 1, "day": day}
