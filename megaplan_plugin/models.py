"""The plugin's own tables (prefix ``megaplan_``), mapped on the host's database.

The host owns the one flask-sqlalchemy ``db``; the plugin keeps its own ``MetaData`` so that it
needs nothing of the host at import time, creates and upgrades its tables with its own
migrations (``migrations/``) and works through ``host.db.session``.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint,
                        false, text, true)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: datetime | None) -> datetime | None:
    """A stored time with its zone: SQLite hands timezone-aware columns back naive, and they
    were written in UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {datetime: DateTime(timezone=True)}


class OutboxEntry(Base):
    """The outbox: one row per piece of work for Megaplan that must survive Redis and restarts.

    ``kind`` "call" is a finished PBX call (the history, kept until Megaplan confirmed it; the
    journal shows these); "popup" is a live event that could not be queued when it happened
    and is replayed while it is still worth showing. Keyed by the PBX call id.
    """

    __tablename__ = "megaplan_outbox"
    __table_args__ = (
        UniqueConstraint("account_id", "call_id", "kind", name="uq_megaplan_outbox_key"),
        Index("ix_megaplan_outbox_state", "state", "updated_at"),
        # the journal and the status panel: an account's calls by time, with or without a state
        Index("ix_megaplan_outbox_journal", "account_id", "kind", "started_at"),
        Index("ix_megaplan_outbox_journal_state", "account_id", "kind", "state", "started_at"),
        # the sweep: the accounts that have work, one index seek per account
        Index("ix_megaplan_outbox_work", "kind", "state", "account_id"),
        # the sweep: recording copies whose job Redis may have lost
        Index("ix_megaplan_outbox_copy", "copy_state", "copy_next_at"),
        # «Номера с несколькими клиентами»: each candidate's last call
        Index("ix_megaplan_outbox_contractor", "account_id", "contractor_id", "started_at"),
    )

    CALL, POPUP = "call", "popup"
    PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"
    STATE_TITLES = {PENDING: "ожидает", SENT: "отправлен", FAILED: "ошибка", SKIPPED: "не передан"}
    COPY_PENDING, COPY_DONE, COPY_FAILED = "pending", "copied", "failed"  # copy_state

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), default=CALL)
    # "push" (a hook) or "reconcile" (found in the PBX history, the push never came)
    source: Mapped[str] = mapped_column(String(16), default="push")
    account_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(3))
    client_phone: Mapped[str] = mapped_column(String(32))
    virtual_number: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    record: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_retry_at: Mapped[datetime | None]
    megaplan_call_id: Mapped[str | None] = mapped_column(String(64))
    # The Megaplan client the call was written with, as the journal names it.
    client_name: Mapped[str | None] = mapped_column(String(300))
    contractor_id: Mapped[str | None] = mapped_column(String(32))
    # A missed call's «Перезвонить» todo, and the PBX call that reached the number later.
    callback_todo_id: Mapped[str | None] = mapped_column(String(32))
    callback_closed_by: Mapped[str | None] = mapped_column(String(128))
    # A missed incoming call's callback (``Callback``): several misses of one number share one.
    callback_id: Mapped[int | None] = mapped_column(Integer)
    # How often the recording was played through the plugin's own link (calls/recording_links.py)
    recording_plays: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # «Копировать записи в Мегаплан» (delivery/recording_copy.py): None when no copy is wanted,
    # else pending / copied / failed; the Megaplan File; tries so far and when the next is due.
    copy_state: Mapped[str | None] = mapped_column(String(16))
    copy_file_id: Mapped[str | None] = mapped_column(String(32))
    copy_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    copy_next_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Credential(Base):
    """Megaplan login of an account («Учетные данные»); password and tokens encrypted."""

    __tablename__ = "megaplan_credential"
    __table_args__ = (UniqueConstraint("account_id", "title"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(100))
    login: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str] = mapped_column(String(255))
    password_enc: Mapped[str] = mapped_column(Text)
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None]
    megaplan_user_name: Mapped[str | None] = mapped_column(String(200))
    employees_fetched_at: Mapped[datetime | None]
    # Read with the employees: the account's todo category of masterType «call», if any.
    call_category_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def domain(self) -> str:
        return self.base_url.removeprefix("https://")


class Settings(Base):
    """«Параметры интеграции» of one account."""

    __tablename__ = "megaplan_settings"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[int | None] = mapped_column(ForeignKey("megaplan_credential.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    filter_by_numbers: Mapped[bool] = mapped_column(Boolean, default=False)
    virtual_numbers: Mapped[list] = mapped_column(JSON, default=list)
    default_responsible_id: Mapped[str | None] = mapped_column(String(32))
    route_to_manager: Mapped[bool] = mapped_column(Boolean, default=False)
    create_client_on_incoming: Mapped[bool] = mapped_column(Boolean, default=False)
    create_contact_on_outgoing: Mapped[bool] = mapped_column(Boolean, default=False)
    create_communication: Mapped[bool] = mapped_column(Boolean, default=False)
    communication_types: Mapped[list] = mapped_column(JSON, default=list)
    save_unknown_employees: Mapped[bool] = mapped_column(Boolean, default=False)
    unknown_employee_user_id: Mapped[str | None] = mapped_column(String(32))
    # The Megaplan telephony app calls /api/<api_key>/… with «Bearer <secret>»; only a hash is kept.
    api_key: Mapped[str] = mapped_column(String(64), unique=True)
    api_secret_hash: Mapped[str | None] = mapped_column(String(64))
    api_secret_hint: Mapped[str | None] = mapped_column(String(16))
    # Reconciliation with the PBX's own history: the window checked last and what it found.
    reconciled_at: Mapped[datetime | None]
    reconciled_until: Mapped[datetime | None]
    reconcile_found: Mapped[int | None] = mapped_column(Integer)
    # «Часовой пояс»: how the account reads times (web/timezones.py); stored times are UTC
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow",
                                           server_default="Europe/Moscow")
    # Recordings behind the plugin's own links: the signing key (encrypted) and its generation
    # («Отозвать ссылки на записи» makes the next), and «Хранить записи» in days (None: as long
    # as the PBX keeps them).
    recording_key_enc: Mapped[str | None] = mapped_column(Text)
    recording_key_generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    recording_days: Mapped[int | None] = mapped_column(Integer, default=90, server_default="90")
    copy_recordings: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Missed calls (calls/deadlines.py, calls/callbacks.py): «Перезвонить в течение» (minutes, or
    # "workday"), the working days (Monday = 0) and hours in ``time_zone``, and who gets a
    # callback still open at its deadline: "default" (the default responsible) or "supervisor".
    callback_within: Mapped[str] = mapped_column(String(16), default="30", server_default="30")
    work_days: Mapped[list | None] = mapped_column(JSON, default=lambda: [0, 1, 2, 3, 4])
    work_start: Mapped[str] = mapped_column(String(5), default="09:00", server_default="09:00")
    work_end: Mapped[str] = mapped_column(String(5), default="18:00", server_default="18:00")
    escalate_to: Mapped[str] = mapped_column(String(16), default="default", server_default="default")
    supervisor_id: Mapped[str | None] = mapped_column(String(32))
    # Who answers (calls/routing.py, calls/deals.py): the call's communication related to the
    # client's open deal; the deal's manager rung before the client's responsible; when the
    # person routing picked cannot take the call, "default" (the default responsible) or "pbx"
    # (no opinion: the PBX's own order); and whether out of working hours counts as away.
    link_open_deal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    deal_manager_first: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    route_fallback: Mapped[str] = mapped_column(String(8), default="pbx", server_default="pbx")
    route_respect_hours: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the integration was last switched off: once it is on again, the calls of that time
    # can be sent after all («Передать звонки за время отключения»); None when nothing is owed.
    # ``activated_at``: when it was last switched on; reconciliation never reaches back past it
    # on its own (the time it was off is the admin's to send or not).
    deactivated_at: Mapped[datetime | None]
    activated_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MegaplanEmployee(Base):
    """Megaplan employees of a credential with their telephony internal numbers (a cache)."""

    __tablename__ = "megaplan_employee"
    __table_args__ = (UniqueConstraint("credential_id", "megaplan_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("megaplan_credential.id", ondelete="CASCADE"))
    megaplan_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[str | None] = mapped_column(String(200))
    internal_number: Mapped[str | None] = mapped_column(String(32))
    # Whether the employee can take a call (calls/availability.py), as Megaplan says:
    # ``isWorking``, ``fireDay`` and the ``nearestVacation``'s days (ISO dates).
    working: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    fire_day: Mapped[str | None] = mapped_column(String(10))
    vacation_first: Mapped[str | None] = mapped_column(String(10))
    vacation_last: Mapped[str | None] = mapped_column(String(10))


class ClientPhone(Base):
    """The local index of Megaplan clients by phone, per credential: one row per client and number.

    The one table of clients by (credential, national number). Filled when the integration is
    activated, refreshed periodically, by every client a call found or created and by every
    ``callRoute`` answer; sync and routing look numbers up here before (or instead of) asking
    Megaplan.
    """

    __tablename__ = "megaplan_client_phone"
    __table_args__ = (
        UniqueConstraint("credential_id", "contractor_id", "national", name="uq_megaplan_client_phone_key"),
        Index("ix_megaplan_client_phone_lookup", "credential_id", "national"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("megaplan_credential.id", ondelete="CASCADE"))
    national: Mapped[str] = mapped_column(String(20))      # national significant number
    contractor_type: Mapped[str] = mapped_column(String(32))
    contractor_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(300))
    responsible_id: Mapped[str | None] = mapped_column(String(32))
    megaplan_updated_at: Mapped[str | None] = mapped_column(String(40))  # Megaplan's timeUpdated
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class NumberChoice(Base):
    """«Выбрать»: the client an account chose for a number several clients share
    (``calls/clients.py``). Used by the popup, the history and routing instead of the rule;
    ``name`` is kept so that the journal can say which choice no longer holds."""

    __tablename__ = "megaplan_number_choice"

    credential_id: Mapped[int] = mapped_column(ForeignKey("megaplan_credential.id", ondelete="CASCADE"),
                                               primary_key=True)
    national: Mapped[str] = mapped_column(String(20), primary_key=True)
    contractor_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(300))
    chosen_at: Mapped[datetime] = mapped_column(default=utcnow)


class OpenDeal(Base):
    """The local index of Megaplan's open deals, per credential (``calls/deals.py``): filled
    with the clients, read when a call rings and when it is written, never asked at ring time."""

    __tablename__ = "megaplan_deal"
    __table_args__ = (Index("ix_megaplan_deal_contractor", "credential_id", "contractor_id"),)

    credential_id: Mapped[int] = mapped_column(ForeignKey("megaplan_credential.id", ondelete="CASCADE"),
                                               primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    contractor_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(300))
    manager_id: Mapped[str | None] = mapped_column(String(32))          # an Employee, else None
    megaplan_updated_at: Mapped[str | None] = mapped_column(String(40))  # Megaplan's timeUpdated


class CallRating(Base):
    """The customer's rating of a call (the PBX's ``rating``, calls/ratings.py): from the
    ``history`` or a later ``cmd=rating``. ``noted_at``: written on the call's communication
    (or found that there is none to write it on); the first rating of a call is the one kept."""

    __tablename__ = "megaplan_call_rating"
    __table_args__ = (
        Index("ix_megaplan_call_rating_unnoted", "account_id",
              sqlite_where=text("noted_at IS NULL"), postgresql_where=text("noted_at IS NULL")),
    )

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    noted_at: Mapped[datetime | None]


class EmployeeLink(Base):
    """A PBX employee linked by hand to a Megaplan employee who has no telephony number yet.

    Saving active settings writes the missing ``CallUserConfig`` (internal number = the PBX
    extension) in Megaplan; ``config_created_at`` marks the ones the plugin created, the only
    ones it would ever touch again.
    """

    __tablename__ = "megaplan_employee_link"
    __table_args__ = (UniqueConstraint("account_id", "pbx_login", name="uq_megaplan_employee_link_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    pbx_login: Mapped[str] = mapped_column(String(64))
    megaplan_employee_id: Mapped[str] = mapped_column(String(32))
    config_created_at: Mapped[datetime | None]


class Intent(Base):
    """A create that Megaplan cannot make idempotent, written down before its request.

    ``kind`` "call" (the CallInfo of PBX call ``key``), "client" (the contractor of national
    number ``key``) or "todo" (the communication of PBX call ``key``). The row is committed
    before the create is sent and ``megaplan_id`` after the answer; a row without an id is a
    create whose outcome is unknown, so the next attempt looks the entity up before it creates
    anything (``delivery/intents.py``). ``busy_until`` is the lease of whoever has a request
    on the entity in flight; ``finished`` marks a call whose history is being written, after
    which no popup job touches it.
    """

    __tablename__ = "megaplan_intent"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "key", name="uq_megaplan_intent_key"),
        Index("ix_megaplan_intent_megaplan_id", "account_id", "kind", "megaplan_id"),
    )

    CALL, CLIENT, TODO, FILE = "call", "client", "todo", "file"
    # On a callback's todo (calls/callbacks.py): the comment of a further miss (key: the PBX
    # call), the finish that closes it and the hand-over at its deadline (key: the callback id).
    NOTE, FINISH, ESCALATE = "note", "finish", "escalate"
    # The customer's rating added to a written call's communication (key: the PBX call).
    RATING = "rating"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(128))
    megaplan_id: Mapped[str | None] = mapped_column(String(64))
    megaplan_type: Mapped[str | None] = mapped_column(String(32))
    busy_until: Mapped[datetime | None]
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Callback(Base):
    """A number that must be called back: open from its first missed call until an answered
    call reaches it (``calls/callbacks.py``). Several misses before that are this one row
    (``misses``), and one todo in Megaplan. The partial unique index makes a second open
    callback of a number impossible, whatever runs at once.
    """

    __tablename__ = "megaplan_callback"
    __table_args__ = (
        Index("uq_megaplan_callback_open", "account_id", "client_phone", unique=True,
              sqlite_where=text("outcome IS NULL"), postgresql_where=text("outcome IS NULL")),
        # the report: an account's callbacks by the time of their first miss
        Index("ix_megaplan_callback_report", "account_id", "opened_at"),
        # the sweep and the report: open callbacks not handed on yet (a handful), by deadline
        Index("ix_megaplan_callback_due", "due_at", "account_id",
              sqlite_where=text("outcome IS NULL AND escalated_at IS NULL"),
              postgresql_where=text("outcome IS NULL AND escalated_at IS NULL")),
    )

    IN_TIME, LATE, CLIENT = "in_time", "late", "client"  # outcome; None while open
    OUTCOME_TITLES = {IN_TIME: "перезвонили в срок", LATE: "перезвонили с опозданием",
                      CLIENT: "клиент дозвонился сам"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    client_phone: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime]          # the first missed call's start
    last_missed_at: Mapped[datetime]
    misses: Mapped[int] = mapped_column(Integer, default=1)
    due_at: Mapped[datetime | None]      # None: made before deadlines existed (never escalated)
    todo_id: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(8))
    closed_at: Mapped[datetime | None]   # the start of the call that reached the client
    closed_call_id: Mapped[str | None] = mapped_column(String(128))
    closed_by_id: Mapped[str | None] = mapped_column(String(32))     # Megaplan employee
    closed_by_name: Mapped[str | None] = mapped_column(String(200))
    wait_seconds: Mapped[int | None] = mapped_column(Integer)        # first miss to the call back
    escalated_at: Mapped[datetime | None]
    escalated_to: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallbackRung(Base):
    """Who was rung by a missed call (Megaplan employees): the report's "who was rung"."""

    __tablename__ = "megaplan_callback_rung"
    __table_args__ = (
        UniqueConstraint("callback_id", "call_id", "employee_id", name="uq_megaplan_callback_rung"),
        Index("ix_megaplan_callback_rung_report", "account_id", "missed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    callback_id: Mapped[int] = mapped_column(ForeignKey("megaplan_callback.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(128))
    employee_id: Mapped[str] = mapped_column(String(32))
    missed_at: Mapped[datetime]


class CallbackTally(Base):
    """The missed-calls report's counts by hour (``calls/callback_tallies.py``): ``figure`` at
    the UTC ``hour`` of a callback's first miss, ``detail`` the employee or the wait bucket."""

    __tablename__ = "megaplan_callback_tally"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    figure: Mapped[str] = mapped_column(String(16), primary_key=True)
    detail: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    n: Mapped[int] = mapped_column(Integer, default=0)
