"""The sandbox's stand-in for the «Телефония МегаФон 2.0» app: the buttons that steer the PBX.

In Megaplan the telephony widget calls the provider when a manager clicks a number or
«Завершить». Here the sandbox page does the same against the plugin's API, so the whole loop
(click → the PBX rings the employee → popup → «Завершить» → history) can be watched.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests
from flask import Blueprint, current_app, flash, redirect, request, url_for

bp = Blueprint("megaplan_sandbox_app", __name__, url_prefix="/_sandbox/app")
TIMEOUT = (2, 5)


def _state():
    return current_app.extensions["megaplan_sandbox"]


URL_FIELDS = {"call_url": "Адрес для звонка", "hangup_url": "Адрес для «Завершить»"}


def clean_url(value: str) -> str:
    """A URL as pasted: spaces and a leading method («POST http://…», as some pages show it) go."""
    return re.sub(r"^(?:POST|GET)\s+", "", value.strip(), flags=re.IGNORECASE).strip()


@bp.post("/settings")
def save_settings():
    state = _state()
    values = {key: clean_url(request.form.get(key, "")) for key in URL_FIELDS}
    values["secret"] = request.form.get("secret", "").strip()
    wrong = [title for key, title in URL_FIELDS.items()
             if values[key] and (urlsplit(values[key]).scheme not in ("http", "https") or not urlsplit(values[key]).netloc)]
    if wrong:
        flash(f"Не сохранено: {', '.join(wrong)} — не адрес вида http://… или https://…")
        return redirect(url_for("megaplan_sandbox_page.index"))
    state.telephony_app = values
    flash("Настройки приложения сохранены.")
    return redirect(url_for("megaplan_sandbox_page.index"))


@bp.post("/call")
def call():
    result = _post("call_url", {"phone": request.form.get("phone", ""),
                                "employee_id": request.form.get("employee_id", "")})
    flash(f"Звонок в один клик: {result}")
    return redirect(url_for("megaplan_sandbox_page.index"))


@bp.post("/hangup")
def hangup():
    result = _post("hangup_url", {"megaplan_call_id": request.form.get("call_id", "")})
    flash(f"«Завершить»: {result}")
    return redirect(url_for("megaplan_sandbox_page.index"))


def _post(url_key: str, body: dict) -> str:
    app = getattr(_state(), "telephony_app", None) or {}
    if not app.get(url_key):
        return "укажите адреса и секретный ключ приложения"
    try:
        response = requests.post(app[url_key], json=body, timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {app.get('secret', '')}"})
    except requests.RequestException as exc:
        return f"нет ответа ({type(exc).__name__})"
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.ok:
        return "принято" + (f", звонок АТС {answer['call_id']}" if isinstance(answer, dict) and answer.get("call_id") else "")
    message = answer.get("message") if isinstance(answer, dict) else None
    return f"отказ ({response.status_code}): {message or response.text[:200]}"
