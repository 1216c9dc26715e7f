"""What one account's finished calls need in Megaplan, one call or one batch at a time.

The unit is given everything it works with (the session, the engine its intents commit on,
the host, the Megaplan client, the account's settings), so it runs the same in a job, a test
or a benchmark. It never commits the session: the writer does, once per call. Every create
goes through a durable intent (``intents.py``): the usual call sends one request, and a call
whose earlier answer was lost is looked up before anything is created again.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timezone

from megaplan_plugin import phones
from megaplan_plugin.calls import callbacks, clients, deals, ratings, sync, who_answers
from megaplan_plugin.delivery import intents
from megaplan_plugin.megaplan import MegaplanClient, MegaplanError, unconfirmed
from megaplan_plugin.calls import recording_links
from megaplan_plugin.models import Credential, Intent, OutboxEntry, Settings


@dataclass
class Planned:
    """A waiting call with what local data says about it, before any request."""

    row: OutboxEntry
    owner: sync.CallOwner
    contractor: dict | None   # the client, when the local index knows it
    known: bool               # the client (or that there is none) is known without asking
    wants_todo: bool
    notes: list = field(default_factory=list)
    fields: dict | None = None  # its history item, when it can go in a batch


@dataclass
class Written:
    call: dict
    contractor: dict | None
    todo_id: str | None = None
    # A client found or created in Megaplan, for the local index: (contractor, numbers or None)
    to_index: tuple | None = None
    rating: int | None = None  # the customer's score, written in the communication


class CallSync:
    def __init__(self, session, engine, host, client: MegaplanClient, settings: Settings,
                 public_url: str | None = None):
        self.session, self.engine, self.host = session, engine, host
        self.client, self.settings = client, settings
        # the cabinet's address for the plugin's own recording links; None: the PBX's links
        self.public_url = public_url if hasattr(host.pbx, "recording") else None
        self.account_id = settings.account_id
        self._owners: dict = {}
        # whom routing named for an incoming call, for the journal's words (who_answers.py)
        self._routing = who_answers.options_of(settings) if settings.route_to_manager else None

    # -- what local data says ---------------------------------------------------------------
    def plan(self, rows: list[OutboxEntry]) -> tuple[list[Planned], list[Planned]]:
        """(calls that can go in one history batch, calls that go one by one).

        A batch takes calls whose client is known locally and that want nothing but their
        history: no communication to create, no callback to close.
        """
        own = clients.own_numbers(self.host, self.account_id)
        matches = clients.lookup_many(self.session, self.settings.credential_id,
                                      [r.client_phone for r in rows if r.client_phone not in own])
        reaching = callbacks.numbers_with_open(self.session, self.account_id, [
            r.client_phone for r in rows if r.status == sync.ANSWERED])
        batch, single = [], []
        for row in rows:
            match = matches.get(row.client_phone)
            owner = self._owner(row.record.get("user"))
            planned = Planned(row, owner, match.contractor if match else None,
                              known=row.client_phone in own or match is not None,
                              wants_todo=self._wants_todo(row.record),
                              notes=[self._owner_note(row, owner), clients.choice_note(match) if match else None,
                                     sync.dropped_recording(row.record), self._route_note(row, match)])
            if planned.known and not planned.wants_todo and row.client_phone not in reaching:
                with contextlib.suppress(ValueError, OverflowError):  # no try can write it: alone
                    planned.fields = sync.history_fields(row.record, owner, planned.contractor,
                                                         self._record_link(row.record))
            (batch if planned.fields else single).append(planned)
        return batch, single

    @staticmethod
    def _owner_note(row: OutboxEntry, owner: sync.CallOwner) -> str | None:
        """A missed call with no one who answered went to the employees it rang (the journal
        names them), not to the default responsible."""
        if owner.reason == "no_employee" and callbacks.is_missed(row) and row.record.get("users_rung"):
            return None
        return sync.note(owner)

    def _route_note(self, row: OutboxEntry, match) -> str | None:
        """Why routing rang someone other than the client's responsible, as it decided when
        the call came (the same local data, at the call's start)."""
        if self._routing is None or row.direction != "in" or match is None:
            return None
        answer = who_answers.ask(self.session, self.settings.credential_id, row.client_phone, self._routing,
                                 row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=timezone.utc))
        return answer.note if answer is not None else None

    def _owner(self, user: dict | None) -> sync.CallOwner:
        key = None if user is None else str(user.get("ext"))
        if key not in self._owners:
            self._owners[key] = sync.owner_of(self.session, self.settings, user)
        return self._owners[key]

    def _wants_todo(self, record: dict) -> bool:
        return bool(self.settings.create_communication) and \
            sync.communication_kind(record) in (self.settings.communication_types or [])

    # -- requests -----------------------------------------------------------------------------
    def write_batch(self, planned: list[Planned]) -> tuple[list[tuple[Planned, dict]], list[Planned]]:
        """Create the calls finished in one ``POST /callInfo/history`` (up to
        ``HISTORY_BATCH_SIZE``); returns (written with their CallInfo, left for one by one).

        Only calls with no intent yet go in (a popup made the others): their intents are made
        in one statement first. Raises ``MegaplanError`` when Megaplan does not take the batch.
        """
        planned = planned[:unconfirmed.HISTORY_BATCH_SIZE]
        claims = intents.claim_many(self.engine, self.account_id, Intent.CALL,
                                    [p.row.call_id for p in planned])
        taken = [p for p in planned if p.row.call_id in claims]
        rest = [p for p in planned if p.row.call_id not in claims]
        if not taken:
            return [], rest
        try:
            saved = self.client.save_call_history([p.fields for p in taken])
        except MegaplanError as exc:
            intents.release_many(self.engine, list(claims.values()), exc)
            raise
        by_provider = {str(c.get("providerId")): c for c in _listed(saved)}
        written = [(p, by_provider[p.row.call_id]) for p in taken if p.row.call_id in by_provider]
        missing = [p for p in taken if p.row.call_id not in by_provider]  # looked up, one by one
        intents.record_many(self.engine, [(claims[p.row.call_id], call["id"]) for p, call in written])
        intents.release_many(self.engine, [claims[p.row.call_id] for p in missing])
        return written, rest + missing

    def write_one(self, p: Planned) -> Written:
        """Client, history, communication and reached callbacks of one call.

        Raises ``intents.Busy`` when a popup job has a request on the call in flight.
        """
        row, record = p.row, p.row.record
        to_index = None if p.known else self._client_of(row, p.owner)
        if to_index is not None and to_index[1] is not None:  # numbers of its own: made by this call
            p.notes.append(f"{'клиент' if row.direction == 'in' else 'контакт'} создан в Мегаплан этим звонком")
        contractor = to_index[0] if to_index else p.contractor
        fields = sync.history_fields(record, p.owner, contractor, self._record_link(record))
        with intents.lease(self.engine, self.account_id, Intent.CALL, row.call_id, finish=True) as claim:
            if claim.megaplan_id is None and not claim.fresh:
                existing = self.client.get_call_by_provider(row.call_id)
                if existing is not None:
                    claim.megaplan_id = str(existing["id"])
            if claim.megaplan_id is not None:
                call = self.client.update_call(claim.megaplan_id, fields)  # the popup's, finished
            else:
                call = _listed(self.client.save_call_history([fields]))[0]
            claim.record(call["id"])
        written = Written(call, contractor, to_index=to_index)
        # Reads first, writes after the requests: on SQLite a write would hold the database's
        # one write lock while Megaplan answers (and the intents commit on their own connection).
        missed = callbacks.is_missed(row)
        rung = sync.rung(self.session, self.settings.credential_id, record.get("users_rung")) if missed else []
        callback = callbacks.open_for(self.session, self.account_id, row.client_phone) if missed else None
        if p.wants_todo and callback is not None and callback.todo_id:
            callbacks.another_miss(self.client, self.engine, callback, row, rung, self.settings.time_zone)
            written.todo_id = callback.todo_id  # one todo for every miss until the number is reached
        elif p.wants_todo:
            deadline = None
            if missed:
                deadline = callback.due_at if callback is not None else callbacks.due_for(self.settings, row)
            deal = deals.open_deal_of(self.session, self.settings.credential_id, contractor["id"]) \
                if contractor is not None and self.settings.link_open_deal else None
            if deal is not None:
                p.notes.append(f"коммуникация связана со сделкой «{deal.name}»")
            score = ratings.of_call(self.session, row)
            written.todo_id = self._communication(row, call, p.owner, contractor, rung, dict(
                deadline=callbacks.deadline_text(deadline, self.settings.time_zone),
                deal_id=deal.deal_id if deal is not None else None,
                rating=ratings.words(score) if score is not None else None))
            written.rating = score
        if row.status == sync.ANSWERED:
            callbacks.close_reached(self.session, self.client, self.engine, row, p.owner.employee_id,
                                    self.settings.time_zone)
        if missed:
            callbacks.missed(self.session, self.settings, row, rung, written.todo_id)
        if written.rating is not None:  # a write: after every request (see above)
            ratings.noted(self.session, row, written.rating)
        return written

    def record_missed(self, row: OutboxEntry) -> None:
        """A missed call written without a todo: on its number's callback all the same."""
        rung = sync.rung(self.session, self.settings.credential_id, row.record.get("users_rung"))
        callbacks.missed(self.session, self.settings, row, rung, None)

    def _client_of(self, row: OutboxEntry, owner: sync.CallOwner) -> tuple | None:
        """The client of a number the index does not know: searched, and created when the
        settings say so (under the number's intent). Returns (client, its numbers for the
        index, or None when it was found and its card has them), or None."""
        create = None
        if row.direction == "in" and self.settings.create_client_on_incoming:
            create = "client"
        elif row.direction == "out" and self.settings.create_contact_on_outgoing:
            create = "contact"
        found = clients.find(self.client, row.client_phone)
        if found is not None:
            return found, None
        if create is None:
            return None
        national = phones.national(row.client_phone) or row.client_phone
        with intents.lease(self.engine, self.account_id, Intent.CLIENT, national) as claim:
            if claim.megaplan_id is not None:  # made before, and the search has not caught up
                made = {"contentType": claim.megaplan_type or "ContractorHuman", "id": claim.megaplan_id,
                        "name": f"{'Новый клиент' if create == 'client' else 'Новый контакт'} "
                                f"{phones.display(row.client_phone)}"}
            else:
                made = clients.create(self.client, row.client_phone, create, owner.responsible_id)
                claim.record(made["id"], made.get("contentType") or "ContractorHuman")
        return made, [national]

    def index(self, written: Written) -> None:
        """A client the call found or created goes into the local index (after the requests:
        on SQLite a write would hold the database's one write lock through them)."""
        if written.to_index is not None:
            contractor, numbers = written.to_index
            clients.remember(self.session, self.settings.credential_id, contractor, numbers)

    def _record_link(self, record: dict) -> str | None:
        return recording_links.link_for(self.settings, record, self.public_url, self.engine)

    def _communication(self, row: OutboxEntry, call: dict, owner, contractor, rung: list[str],
                       extra: dict) -> str:
        record = row.record
        with intents.lease(self.engine, self.account_id, Intent.TODO, row.call_id) as claim:
            if claim.megaplan_id is None and not claim.fresh:
                existing = self.client.call_todos(call["id"])
                if existing:
                    claim.megaplan_id = str(existing[0]["id"])
            if claim.megaplan_id is None:
                category = self.session.get(Credential, self.settings.credential_id).call_category_id
                todo = self.client.create_call_todo(call["id"], sync.communication_fields(
                    record, owner, contractor, missed_by=rung, category_id=category, **extra))
                claim.megaplan_id = str(todo["id"])
            claim.record(claim.megaplan_id)
        return claim.megaplan_id


def _listed(saved) -> list[dict]:
    return saved if isinstance(saved, list) else [saved]
