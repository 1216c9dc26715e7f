"""Megaplan → plugin: click-to-call and «Завершить» for the Megaplan telephony app.

JSON in, JSON out, ``Authorization: Bearer <secret>`` per account (CONTRACT §5). Every error a
caller can provoke is a 4xx with ``{"error": code, "message": Russian text}``.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import select

from megaplan_plugin import cabinet
from megaplan_plugin.calls import rules
from megaplan_plugin.web import inputs as web_input
from megaplan_plugin.crypto import api_secret_matches
from megaplan_plugin.delivery.intents import call_of_megaplan_id
from megaplan_plugin.models import OutboxEntry, MegaplanEmployee, Settings
from megaplan_plugin.phones import InvalidPhone, normalize

bp = Blueprint("megaplan_api", __name__, url_prefix="/plugins/megaplan/api")

# Click-to-call rings a real phone: a runaway script in Megaplan must not ring it endlessly.
CALLS_PER_EMPLOYEE = 5
CALL_WINDOW_SECONDS = 60
# Longest values the tables hold (Settings.api_key, OutboxEntry.call_id / megaplan_call_id,
# MegaplanEmployee.megaplan_id / internal_number); a phone longer than this is no phone.
KEY_MAX, CALL_ID_MAX, MEGAPLAN_CALL_ID_MAX, EMPLOYEE_MAX, PHONE_MAX = 64, 128, 64, 32, 64
# Compared against when the key is unknown, so both answers take the same work.
_NO_SECRET_HASH = "0" * 64


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    response = jsonify(error=exc.code, message=exc.message)
    response.status_code = exc.status
    if exc.status == 429:
        response.headers["Retry-After"] = str(CALL_WINDOW_SECONDS)
    return response


def _authorized_settings(account_key: str) -> Settings:
    settings = None
    # A key no table can hold (too long, NUL, control characters) is simply an unknown key.
    if len(account_key) <= KEY_MAX and web_input.is_printable(account_key):
        settings = cabinet.host().db.session.execute(
            select(Settings).where(Settings.api_key == account_key)).scalar_one_or_none()
    header = request.headers.get("Authorization", "")
    secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
    # Unknown keys and wrong secrets answer alike (and cost alike), so keys cannot be probed.
    stored_hash = (settings.api_secret_hash if settings is not None else None) or _NO_SECRET_HASH
    if not api_secret_matches(secret, stored_hash) or settings is None or not settings.api_secret_hash:
        raise ApiError(401, "unauthorized", "Неверный ключ аккаунта или секретный ключ")
    return settings


def _json_body() -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the JSON parser goes
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "Ожидается JSON-объект")
    return body


def _field(body: dict, name: str, max_length: int) -> str:
    """A string (or number) field of the body, safe for a query; "" when absent."""
    value = body.get(name)
    if value is None:
        return ""
    try:
        return web_input.text(value, title=f"Поле {name}", max_length=max_length, allow_int=True)
    except web_input.InvalidInput as exc:
        raise ApiError(400, "bad_request", exc.message) from None


def _require_active(settings: Settings) -> None:
    if not rules.active(settings):
        raise ApiError(409, "integration_inactive", "Интеграция с Мегаплан не активна")
    if "megaplan" not in cabinet.host().enabled_plugins(settings.account_id):
        raise ApiError(409, "integration_inactive", "Интеграция отключена в кабинете")


def _pbx_login(settings: Settings, body: dict) -> str:
    """The PBX employee for a Megaplan employee id or an internal number."""
    employee_id = _field(body, "employee_id", EMPLOYEE_MAX)
    internal_number = _field(body, "internal_number", EMPLOYEE_MAX)
    if employee_id:
        employee = cabinet.host().db.session.execute(select(MegaplanEmployee).where(
            MegaplanEmployee.credential_id == settings.credential_id,
            MegaplanEmployee.megaplan_id == employee_id)).scalar_one_or_none()
        if employee is None:
            raise ApiError(404, "unknown_employee", "Сотрудник Мегаплан не найден")
        internal_number = employee.internal_number
        if not internal_number:
            raise ApiError(409, "employee_not_mapped",
                           "У сотрудника нет внутреннего номера в настройках телефонии Мегаплан")
    elif not internal_number:
        raise ApiError(400, "bad_request", "Укажите employee_id или internal_number")
    for user in cabinet.host().pbx.users(settings.account_id):
        if user.ext == internal_number:
            return user.login
    raise ApiError(409, "employee_not_mapped",
                   f"Внутренний номер {internal_number} не найден среди сотрудников АТС")


def _rate_limit(settings: Settings, login: str) -> None:
    conn = current_app.extensions["megaplan"].redis
    key = f"megaplan:ratelimit:call:{settings.account_id}:{login}"
    try:
        count = conn.incr(key)
        if count == 1:
            conn.expire(key, CALL_WINDOW_SECONDS)
    except RedisError:
        return  # the limit protects phones, it must not make calls impossible
    if count > CALLS_PER_EMPLOYEE:
        raise ApiError(429, "too_many_calls",
                       f"Не больше {CALLS_PER_EMPLOYEE} звонков в минуту с одного номера сотрудника")


@bp.post("/<account_key>/call")
def call(account_key: str):
    settings = _authorized_settings(account_key)
    body = _json_body()
    _require_active(settings)
    try:
        phone = body.get("phone")
        if not isinstance(phone, (str, int)) or isinstance(phone, bool):
            raise InvalidPhone("Укажите номер телефона строкой")
        try:
            phone = web_input.text(phone, title="Номер телефона", max_length=PHONE_MAX, allow_int=True)
        except web_input.InvalidInput as exc:
            raise InvalidPhone(exc.message) from None
        phone = normalize(phone)
    except InvalidPhone as exc:
        raise ApiError(400, "invalid_phone", str(exc)) from None
    login = _pbx_login(settings, body)
    _rate_limit(settings, login)
    call_id = cabinet.host().pbx.make_call(settings.account_id, login, phone)
    return jsonify(call_id=call_id, user=login, phone=phone)


def _pbx_call_of(account_id: str, megaplan_call_id: str) -> str:
    """The PBX call id behind the Megaplan call id a popup carries (the call's intent)."""
    return call_of_megaplan_id(cabinet.host().db.session, account_id, megaplan_call_id) or ""


@bp.post("/<account_key>/hangup")
def hangup(account_key: str):
    settings = _authorized_settings(account_key)
    body = _json_body()
    _require_active(settings)
    call_id = _field(body, "call_id", CALL_ID_MAX)
    megaplan_call_id = _field(body, "megaplan_call_id", MEGAPLAN_CALL_ID_MAX)
    db = cabinet.host().db
    if not call_id and megaplan_call_id:
        call_id = _pbx_call_of(settings.account_id, megaplan_call_id)
        if not call_id:
            raise ApiError(404, "unknown_call", "Звонок не найден")
    if not call_id:
        raise ApiError(400, "bad_request", "Укажите call_id или megaplan_call_id")
    if cabinet.host().pbx.hangup(settings.account_id, call_id):
        return jsonify(call_id=call_id, status="ended")
    finished = db.session.execute(select(OutboxEntry.id).where(
        OutboxEntry.account_id == settings.account_id, OutboxEntry.call_id == call_id)).first()
    if finished:
        raise ApiError(409, "already_finished", "Звонок уже завершён")
    raise ApiError(404, "unknown_call", "Звонок не найден")
