"""The sandbox's stand-in for the «Телефония МегаФон 2.0» app: the buttons that steer the PBX.

In Megaplan the telephony widget calls the provider when a manager clicks a number or
«Завершить». Here the sandbox page does the same against the plugin's API, so the whole loop
(click → the PBX rings the employee → popup → «Завершить» → history) can be watched.
"""
from __future__ import annotations

import requests
from flask import Blueprint, current_app, flash, redirect, request, url_for

bp = Blueprint("megaplan_sandbox_app", __name__, url_prefix="/_sandbox/app")
TIMEOUT = (2, 5)


def _state():
    return current_app.extensions["megaplan_sandbox"]


@bp.post("/settings")
def save_settings():
    state = _state()
    state.telephony_app = {key: request.form.get(key, "").strip()
                           for key in ("call_url", "hangup_url", "secret")}
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
        answer = response.text[:200]
    return f"{response.status_code} {answer}"
