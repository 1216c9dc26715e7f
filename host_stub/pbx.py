"""The simulated PBX: live call state, pushes turned into hooks, and the PBX services.

Everything that happens to a call goes through :meth:`Pbx.handle_push` with the fields a real
MegaFon PBX would send, whether the push came over HTTP or from the simulator's buttons, so the
plugin sees exactly one kind of input.
"""
from __future__ import annotations

import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import has_request_context, request

from .pbx_recordings import Recording, RecordingStore
from .pbx_store import PbxStore
from .push import Push, parse_push
from .types import CallEvent, CallRating, CallRecord, PbxUser

if TYPE_CHECKING:
    from .host import Host

LIVE_CALL_TTL = timedelta(hours=2)


@dataclass
class LiveCall:
    account_id: str
    call_id: str
    direction: str
    client_phone: str
    virtual_number: str | None
    started_at: datetime
    rung: dict[str, PbxUser | None] = field(default_factory=dict)
    answered_by: PbxUser | None = None
    answered_at: datetime | None = None
    group_name: str | None = None
    route: str | None = None


class Pbx:
    def __init__(self, host: Host):
        self.host = host
        config = host.app.config
        self.store = PbxStore(config["PBX_DATABASE_URL"])
        self.recordings = RecordingStore(self.store.engine, config["PBX_RECORDINGS_DIR"],
                                         link_days=config["CABINET_PBX_LINK_DAYS"],
                                         keep_days=config["CABINET_PBX_RECORDING_DAYS"])
        # How far the PBX's clock runs ahead of the real one: tests and demos move it to see
        # a pushed link lapse while the authenticated download still works.
        self.clock_offset = timedelta(0)
        self._lock = threading.Lock()
        self._live: dict[tuple[str, str], LiveCall] = {}
        self._journal: dict[str, deque] = {}
        # «Кабинет недоступен: пуши теряются»: the share of pushes lost per account (0..1).
        self.push_loss: dict[str, float] = {}

    # -- host services (CONTRACT §3) ---------------------------------------------------------
    def users(self, account_id: str) -> list[PbxUser]:
        return self.store.users(account_id)

    def virtual_numbers(self, account_id: str) -> list[str]:
        return self.store.virtual_numbers(account_id)

    def make_call(self, account_id: str, user_login: str, phone: str) -> str:
        """Click-to-call: the employee's phone rings first, then the PBX dials the client."""
        user = self.user(account_id, user_login)
        if user is None:
            raise LookupError(f"no PBX user {user_login!r} in account {account_id!r}")
        call_id = new_call_id()
        # The PBX places the call from the employee's direct number or, without one, from the
        # account's first virtual number, and says which in `diversion`, so a filter on
        # virtual numbers sees click-to-call calls too.
        numbers = self.virtual_numbers(account_id)
        self.handle_push(account_id, {
            "cmd": "event", "type": "OUTGOING", "direction": "out", "phone": phone,
            "user": user.login, "ext": user.ext or "", "telnum": user.telnum or "",
            "diversion": user.telnum or (numbers[0] if numbers else ""), "callid": call_id,
        }, source="make_call")
        return call_id

    def history(self, account_id: str, since: datetime, until: datetime) -> list[CallRecord]:
        """Finished calls of the account that ended in [since, until) (the PBX ``history`` command)."""
        return self.store.calls_between(account_id, since, until)

    def close(self) -> None:
        """Stop the background fetches and close the PBX store (an app being torn down)."""
        self.recordings.close()
        self.store.dispose()

    def recording(self, account_id: str, call_id: str, start: int | None = None,
                  end: int | None = None) -> Recording | None:
        """The call's recording by the PBX's authenticated download (revision 3); ``start`` and
        ``end`` a byte range, inclusive (``start`` None: the last ``end`` bytes). A range that
        starts past the end gives a Recording with ``end < start`` and no bytes."""
        return self.recordings.read(account_id, call_id, self.now(), start, end)

    def public_recording(self, account_id: str, call_id: str) -> Recording | None:
        """What the pushed ``link`` serves, until it lapses."""
        return self.recordings.public(account_id, call_id, self.now())

    def now(self) -> datetime:
        return _now() + self.clock_offset

    def hangup(self, account_id: str, call_id: str) -> bool:
        """End a live call ("Завершить"); False when the PBX knows no such live call."""
        call = self.live_call(account_id, call_id)
        if call is None:
            return False
        if call.answered_by is not None:
            status = "Success"
        else:
            status = "missed" if call.direction == "in" else "Cancel"
        self.finish(account_id, call_id, status, source="hangup")
        return True

    # -- lookups ------------------------------------------------------------------------------
    def user(self, account_id: str, login: str | None) -> PbxUser | None:
        if not login:
            return None
        return next((u for u in self.users(account_id) if u.login == login), None)

    def live_call(self, account_id: str, call_id: str) -> LiveCall | None:
        with self._lock:
            return self._live.get((account_id, call_id))

    def live_calls(self, account_id: str) -> list[LiveCall]:
        with self._lock:
            calls = [c for (a, _), c in self._live.items() if a == account_id]
        return sorted(calls, key=lambda c: c.started_at, reverse=True)

    def journal(self, account_id: str) -> list[dict]:
        with self._lock:
            return list(reversed(self._journal.get(account_id, ())))

    def note(self, account_id: str, **entry) -> None:
        entry.setdefault("at", _now())
        with self._lock:
            self._journal.setdefault(account_id, deque(maxlen=200)).append(entry)

    # -- the push protocol --------------------------------------------------------------------
    def handle_push(self, account_id: str, fields: dict, *, source: str = "pbx") -> dict:
        """Apply one push (raises PushError when malformed) and answer as the PBX expects."""
        push = parse_push(fields)
        handler = getattr(self, f"_on_{push.cmd}")
        return handler(account_id, push, source)

    def _lost(self, account_id: str, push: Push, source: str) -> bool:
        """The cabinet was unreachable for this push: the PBX does not send it again."""
        share = self.push_loss.get(account_id, 0.0)
        if share <= 0 or random.random() >= share:
            return False
        self.note(account_id, source=source, push=f"{push.cmd} {push.type or push.status or ''}",
                  call_id=push.call_id, user=push.user, result="пуш потерян: кабинет недоступен")
        return True

    def _on_event(self, account_id: str, push: Push, source: str) -> dict:
        now = _now()
        user = self._push_user(account_id, push)
        with self._lock:
            self._forget_stale(now)
            call = self._live.get((account_id, push.call_id))
            if call is None:
                direction = push.direction or ("out" if push.type == "OUTGOING" else "in")
                call = LiveCall(account_id, push.call_id, direction, push.phone,
                                self._virtual_number(push, direction, user), now,
                                group_name=push.group_name)
                self._live[(account_id, push.call_id)] = call
            previous = call.answered_by
            if push.type in ("INCOMING", "OUTGOING") and push.user:
                call.rung[push.user] = user
            elif push.type == "ACCEPTED":
                call.answered_by, call.answered_at = user, now
            elif push.type == "TRANSFERRED" and user is not None:
                call.answered_by = user  # whoever finishes the call gets its history
                call.answered_at = call.answered_at or now
        event = CallEvent(account_id=account_id, call_id=push.call_id, direction=call.direction,
                          client_phone=call.client_phone, virtual_number=call.virtual_number,
                          user=user, at=now, group_name=push.group_name or call.group_name,
                          transferred_from=previous if push.type == "TRANSFERRED" else None)
        hook = {"INCOMING": "call_started", "OUTGOING": "call_started",
                "ACCEPTED": "call_answered", "TRANSFERRED": "call_transferred"}.get(push.type)
        if hook and self._lost(account_id, push, source):
            return {}
        if hook:
            self.host.call_hook(account_id, hook, event=event)
        self.note(account_id, source=source, push=f"event {push.type}", call_id=push.call_id,
                  user=push.user, hook=hook)
        return {}

    def _on_history(self, account_id: str, push: Push, source: str) -> dict:
        user = self._push_user(account_id, push)
        with self._lock:
            call = self._live.pop((account_id, push.call_id), None)
        wait = push.wait
        if wait is None:  # a PBX that does not send `wait`: what the live events showed
            wait = 0
            if call and call.answered_at:
                wait = max(0, int((call.answered_at - call.started_at).total_seconds()))
        rung = tuple(u for u in (call.rung.values() if call else ()) if u is not None)
        if not rung and user is not None:
            rung = (user,)
        if push.status != "answered" and call is not None and call.answered_by is None:
            # Pitfall: a group login in `user` does not mean someone answered.
            user = user if push.direction == "out" else None
        record = CallRecord(
            account_id=account_id, call_id=push.call_id, direction=push.direction,
            client_phone=push.phone,
            virtual_number=self._virtual_number(push, push.direction, user)
            or (call.virtual_number if call else None),
            status=push.status, user=user, started_at=push.start,
            duration_seconds=push.duration, wait_seconds=wait, users_rung=rung,
            recording_url=push.link, rating=push.rating,
            group_name=push.group_name or (call.group_name if call else None))
        self.store.log_call(record, _now())
        if record.status == "answered" and push.link:
            if urlsplit(push.link).path == _link_path(account_id, push.call_id):
                # the simulator's own call: the PBX records it
                self.recordings.make(account_id, push.call_id, max(0, (push.duration or 0) - wait), self.now())
            else:  # a PBX in front of the stub recorded it: keep a copy, as the real one keeps its own
                self.recordings.fetch_later(account_id, push.call_id, push.link, self.now())
        if self._lost(account_id, push, source):
            return {}
        self.host.call_hook(account_id, "call_ended", record=record)
        self.note(account_id, source=source, push=f"history {push.status}",
                  call_id=push.call_id, user=push.user, hook="call_ended")
        return {}

    def _on_contact(self, account_id: str, push: Push, source: str) -> dict:
        if self._lost(account_id, push, source):
            return {}
        event = CallEvent(account_id=account_id, call_id=push.call_id, direction="in",
                          client_phone=push.phone, virtual_number=push.diversion, user=None,
                          at=_now())
        # Nothing of this push is pending: give the connection back before waiting on the
        # plugins, or a burst of calls would hold every pooled connection while it waits.
        self.host.db.session.commit()
        route = self.host.route(account_id, event)
        answer = {}
        if route is not None:
            answer = {"responsible": route.user_login}
            if route.contact_name:
                answer["contact_name"] = route.contact_name
        self.note(account_id, source=source, push="contact", call_id=push.call_id,
                  hook="route_request", result=_route_words(route))
        return answer

    def _on_rating(self, account_id: str, push: Push, source: str) -> dict:
        if self._lost(account_id, push, source):
            return {}
        rating = CallRating(account_id=account_id, call_id=push.call_id, score=push.rating,
                            client_phone=push.phone, user=self._push_user(account_id, push), at=_now())
        self.host.call_hook(account_id, "call_rated", rating=rating)
        self.note(account_id, source=source, push=f"rating {push.rating}", call_id=push.call_id,
                  user=push.user, hook="call_rated")
        return {}

    # -- simulator ------------------------------------------------------------------------------
    def finish(self, account_id: str, call_id: str, status: str, *, source: str,
               link: str | None = None) -> None:
        """Close a live call the way the PBX does: terminal events per leg, then ``history``."""
        call = self.live_call(account_id, call_id)
        if call is None:
            return
        now = _now()
        answered = call.answered_by
        for login in call.rung:
            if answered is None or login != answered.login:
                self._push_event(account_id, call, "CANCELLED", login, source)
        if answered is not None:
            self._push_event(account_id, call, "COMPLETED", answered.login, source)
        rang_until = call.answered_at or now
        if status.lower() == "missed":
            user_login = "pbx"  # as the live PBX reports unanswered calls
        else:
            user_login = answered.login if answered else next(iter(call.rung), "pbx")
        self.handle_push(account_id, {
            "cmd": "history", "type": call.direction, "status": status,
            "phone": call.client_phone, "diversion": call.virtual_number or "",
            "user": user_login, "callid": call_id,
            "start": call.started_at.strftime("%Y%m%dT%H%M%SZ"),
            # As the PBX reports it: `duration` is the whole call, ringing included, and
            # `wait` the ringing part (reference §7).
            "duration": str(int((now - call.started_at).total_seconds())),
            "wait": str(int((rang_until - call.started_at).total_seconds())),
            "link": link or (self.link_of(account_id, call_id) if answered else ""),
        }, source=source)

    def link_of(self, account_id: str, call_id: str) -> str:
        """The public URL the PBX pushes as ``link`` (served by pbx_views.public_recording)."""
        base = request.host_url if has_request_context() else self.host.app.config["CABINET_PUBLIC_URL"]
        return base.rstrip("/") + _link_path(account_id, call_id)

    def _push_event(self, account_id, call, event_type, login, source) -> None:
        self.handle_push(account_id, {
            "cmd": "event", "type": event_type, "direction": call.direction,
            "phone": call.client_phone, "diversion": call.virtual_number or "",
            "user": login, "callid": call.call_id}, source=source)

    # -- internals ----------------------------------------------------------------------------
    def _push_user(self, account_id: str, push: Push) -> PbxUser | None:
        """The account's employee named by the push; None for groups, IVR, ``pbx`` and strangers."""
        return self.user(account_id, push.user)

    def _virtual_number(self, push: Push, direction: str, user: PbxUser | None) -> str | None:
        """``diversion`` when the push has it, else the employee's direct number on outgoing."""
        if push.diversion:
            return push.diversion
        if direction != "out":
            return None
        return push.telnum or (user.telnum if user else None)

    def _forget_stale(self, now: datetime) -> None:
        # A call whose `history` never came must not pin memory forever.
        for key in [k for k, c in self._live.items() if now - c.started_at > LIVE_CALL_TTL]:
            del self._live[key]


def _link_path(account_id: str, call_id: str) -> str:
    return f"/pbx/{account_id}/recordings/{call_id}"


def new_call_id() -> str:
    return uuid.uuid4().hex.upper()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _route_words(route) -> str:
    """What the simulator's journal says the routing answered, for a person to read."""
    if route is None:
        return "нет маршрута: звонок идёт по сценарию"
    return f"звонить {route.user_login}" + (f" («{route.contact_name}»)" if route.contact_name else "")
