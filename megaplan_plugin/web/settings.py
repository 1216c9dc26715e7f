"""The plugin's pages inside the cabinet: the settings page (``/plugins/megaplan/``)."""
from __future__ import annotations

import json
from datetime import datetime

from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   session, url_for)

from megaplan_plugin import cabinet
from megaplan_plugin.calls import recording_links
from megaplan_plugin.calls import deals, rules
from megaplan_plugin.calls import employees as employees_cache
from megaplan_plugin.web import employee_table
from megaplan_plugin.web import settings_store as store
from megaplan_plugin.web.guard import require_account
from megaplan_plugin.web.inputs import db_int
from megaplan_plugin.web import numbers, one_time
from megaplan_plugin.web import status as panel
from megaplan_plugin.web import timezones
from megaplan_plugin.web import REDIS_DOWN, not_kept, queue_answers
from megaplan_plugin.delivery import outbox, queues
from megaplan_plugin.models import OutboxEntry, utcnow
from megaplan_plugin.web.forms import (
    ActionForm,
    CredentialEditForm,
    CredentialForm,
    DeleteCredentialForm,
    SettingsForm,
)
from megaplan_plugin.megaplan import MegaplanError

SECRET_TICKET = "megaplan_secret_ticket"
SECRET_REPLACED = "megaplan_secret_replaced"  # the new secret replaced one: say the old one died
bp = Blueprint("megaplan", __name__, url_prefix="/plugins/megaplan",
               template_folder="../templates", static_folder="../static",
               static_url_path="/static")
NOBODY = ("", "— не выбран —")

bp.after_request(not_kept)


bp.before_request(require_account)


@bp.route("/", methods=["GET", "POST"])
def settings():
    settings, credentials, form, employees = _settings_form()
    if request.method == "POST" and not form.validate_on_submit():
        flash("Настройки не сохранены: исправьте ошибки, отмеченные ниже.", "danger")
    elif request.method == "POST" and not queue_answers():
        # Saved settings reach the workers' caches through Redis: nothing saved, the form as typed
        flash(REDIS_DOWN + " Настройки не сохранены.", "danger")
    elif request.method == "POST":
        was_indexed = (rules.active(settings), settings.credential_id, deals.wanted(settings))
        form.populate_obj(settings)
        if was_indexed[0] and not rules.active(settings):
            # its calls may be sent once it is on again (the first switch-off of several counts)
            settings.deactivated_at = settings.deactivated_at or utcnow()
        elif not was_indexed[0] and rules.active(settings):
            # on again: reconciliation goes on from now; the time it was off is the admin's
            # choice («Передать звонки за время отключения» or «Не передавать»)
            settings.activated_at = utcnow()
        settings.virtual_numbers = list(form.virtual_numbers.data)
        settings.communication_types = list(form.communication_types.data)
        settings.default_responsible_id = form.default_responsible_id.data or None
        settings.unknown_employee_user_id = form.unknown_employee_user_id.data or None
        settings.recording_days = form.recording_days.data or None
        settings.work_days = sorted(form.work_days.data)
        settings.supervisor_id = form.supervisor_id.data or None
        pending = employee_table.save_links(g.account_id, cabinet.host().pbx.users(g.account_id), employees, {
            key[len("link-"):]: value for key, value in request.form.items() if key.startswith("link-")})
        cabinet.host().db.session.commit()
        _forget_cached(g.account_id)
        if rules.active(settings) and was_indexed[:2] != (True, settings.credential_id) \
                or rules.active(settings) and deals.wanted(settings) and not was_indexed[2]:
            # activation, another Megaplan, or deals wanted now: the index is (re)read
            _later(queues.enqueue_index, settings.credential_id)
        if rules.active(settings) and pending:
            _later(queues.enqueue_call_user_configs, g.account_id)
        flash("Настройки сохранены.", "success")
        return redirect(url_for("megaplan.settings"))
    return _render(form=form, settings=settings, credentials=credentials, employees=employees,
                   status=400 if form.errors else 200)


def _settings_form(typed: bool | None = None):
    """The account's settings, credentials, the settings form (as stored on GET, as typed on
    a POST) and the chosen credential's Megaplan employees for its choices."""
    settings = store.settings_for(g.account_id)
    credentials = store.credentials_for(g.account_id)
    typed = request.method == "POST" if typed is None else typed
    form = SettingsForm(obj=None if typed else settings)
    if typed:
        selected = form.credential_id.data
    else:
        selected = settings.credential_id or (credentials[0].id if credentials else None)
        form.credential_id.data = selected
    # Choices come from the chosen credential's Megaplan, and only from this account's.
    employees = employees_cache.employees_of(selected if any(c.id == selected for c in credentials) else None)
    _fill_choices(form, credentials, employees)
    return settings, credentials, form, employees


@bp.route("/credentials/new", methods=["GET", "POST"])
def add_credential():
    form = CredentialForm()
    if form.validate_on_submit():
        result = store.check_and_store_credential(
            g.account_id, title=form.title.data, login=form.login.data,
            password=form.password.data, domain=form.domain.data)
        if result.credential is not None:
            _select_if_first(result.credential.id)
            flash(f"Учетные данные «{result.credential.title}» добавлены.", "success")
            return redirect(url_for("megaplan.settings"))
        getattr(form, result.field).errors.append(result.error)
    status = 400 if form.errors else 200
    return render_template("megaplan/credential.html", form=form, credential=None), status


@bp.route("/credentials/<int:credential_id>", methods=["GET", "POST"])
def edit_credential(credential_id: int):
    credential = _credential_or_404(credential_id)
    form = CredentialEditForm(obj=credential if request.method == "GET" else None)
    if request.method == "GET":
        form.domain.data = credential.domain
    if form.validate_on_submit():
        result = store.check_and_store_credential(
            g.account_id, title=form.title.data, login=form.login.data,
            password=form.password.data or None, domain=form.domain.data, existing=credential)
        if result.credential is not None:
            flash(f"Учетные данные «{credential.title}» сохранены.", "success")
            return redirect(url_for("megaplan.settings"))
        cabinet.host().db.session.rollback()
        getattr(form, result.field).errors.append(result.error)
    status = 400 if form.errors else 200
    return render_template("megaplan/credential.html", form=form, credential=credential,
                           delete_form=DeleteCredentialForm(),
                           in_use=store.settings_for(g.account_id).credential_id == credential.id), status


@bp.post("/credentials/<int:credential_id>/delete")
def delete_credential(credential_id: int):
    credential = _credential_or_404(credential_id)
    form = DeleteCredentialForm()
    if not form.validate_on_submit():
        return _bad_request()
    in_use = store.settings_for(g.account_id).credential_id == credential.id
    if in_use and not form.confirm.data:
        flash("Эти учетные данные использует интеграция. Подтвердите удаление: "
              "интеграция будет выключена.", "warning")
        return redirect(url_for("megaplan.edit_credential", credential_id=credential.id))
    title = credential.title
    store.delete_credential(g.account_id, credential)
    _forget_cached(g.account_id)
    flash(f"Учетные данные «{title}» удалены.", "success")
    return redirect(url_for("megaplan.settings"))


@bp.post("/employees/refresh")
def refresh_employees():
    if not ActionForm().validate_on_submit():
        return _bad_request()
    settings = store.settings_for(g.account_id)
    # the credential chosen in the form when pressed there (its list is the one shown), else the saved one
    posted = request.form.get("credential_id", "")
    credential = store.credential_for(g.account_id, int(posted)) if posted.isascii() and posted.isdigit() \
        and db_int(int(posted)) else None
    credential = credential or (settings.credential_id and store.credential_for(g.account_id, settings.credential_id))
    credential = credential or next(iter(store.credentials_for(g.account_id)), None)
    if credential is None:
        flash("Сначала добавьте учетные данные.", "warning")
    else:
        try:
            employee_table.refresh_employees(credential)
            _forget_cached(g.account_id)
            flash("Список сотрудников Мегаплан обновлён.", "success")
        except MegaplanError as exc:
            cabinet.host().db.session.rollback()
            flash(f"Не удалось загрузить сотрудников из Мегаплан: {exc.message or exc.status}", "danger")
        except IntegrityError:  # the hourly index stored the list at the same moment: it is fresh
            cabinet.host().db.session.rollback()
            flash("Список сотрудников Мегаплан обновлён.", "success")
    if any(str(c.id) == request.form.get("credential_id") for c in store.credentials_for(g.account_id)):
        # Pressed inside the settings form: what was typed there is shown again, not saved
        flash("Изменения настроек ещё не сохранены: проверьте их и нажмите «Сохранить».", "warning")
        settings, credentials, form, employees = _settings_form(typed=True)
        return _render(form=form, settings=settings, credentials=credentials, employees=employees)
    return redirect(url_for("megaplan.settings") + "#mapping")


@bp.post("/transfer-skipped")
def transfer_skipped():
    """«Передать звонки за время отключения»: the calls not sent while the integration was off
    go to Megaplan after all, with those whose push never came (reconciliation over that
    time); «Не передавать» forgets them."""
    if not ActionForm().validate_on_submit():
        return _bad_request()
    settings = store.settings_for(g.account_id)
    since = settings.deactivated_at
    if since is None or not rules.active(settings):
        return redirect(url_for("megaplan.settings"))
    db = cabinet.host().db
    if request.form.get("dismiss"):
        settings.deactivated_at = None
        db.session.commit()
        flash("Звонки за время отключения не будут переданы в Мегаплан.", "info")
        return redirect(url_for("megaplan.settings"))
    if not queue_answers():
        flash(REDIS_DOWN + " Звонки не переданы, попробуйте позже.", "danger")
        return redirect(url_for("megaplan.settings"))
    rows = db.session.execute(outbox.skipped_while_inactive(g.account_id, since)).scalars().all()
    for row in rows:
        row.state, row.reason, row.next_retry_at = OutboxEntry.PENDING, None, None
    settings.deactivated_at = None
    db.session.commit()
    try:
        queues.wake_writer(g.account_id)
        # calls whose push never came in that time: the PBX's history of it, in the background
        queues.enqueue_reconcile_window(g.account_id, since, settings.activated_at or utcnow())
    except RedisError:
        flash(REDIS_DOWN + " Звонки, о которых АТС не сообщила, не будут найдены.", "warning")
    flash(f"Передаются в Мегаплан звонки за время отключения: {len(rows)}. Звонки, о которых АТС тогда "
          "не сообщила, интеграция найдёт в истории АТС в ближайшие минуты.", "success")
    return redirect(url_for("megaplan_journal.journal"))


@bp.post("/secret")
def rotate_secret():
    if not ActionForm().validate_on_submit():
        return _bad_request()
    try:
        # The cookie carries only a ticket; the secret waits, encrypted, in Redis for one showing.
        settings = store.settings_for(g.account_id)
        session[SECRET_REPLACED] = settings.api_secret_hash is not None
        session[SECRET_TICKET] = store.rotate_api_secret(settings, lambda secret: one_time.keep(g.account_id, secret))
    except RedisError:
        flash(REDIS_DOWN + " Новый ключ не создан, прежний по-прежнему действует.", "danger")
    return redirect(url_for("megaplan.settings") + "#telephony-app")


@bp.post("/recordings/revoke")
def revoke_recording_links():
    """«Отозвать ссылки на записи»: every recording link given to Megaplan so far stops working;
    calls written from now on get links of the new key."""
    if not ActionForm().validate_on_submit():
        return _bad_request()
    recording_links.revoke(store.settings_for(g.account_id))
    cabinet.host().db.session.commit()
    flash("Ссылки на записи отозваны: прежние больше не открываются.", "success")
    return redirect(url_for("megaplan.settings"))


@bp.get("/status.json")
def status_json():
    """The status panel for monitoring: the same figures, as JSON (UTF-8 as it is, so that a
    person opening it reads Russian, not \\u escapes)."""
    return current_app.response_class(json.dumps(panel.account_status(g.account_id), ensure_ascii=False),
                                      mimetype="application/json")


@bp.post("/check")
def check_connection():
    if not ActionForm().validate_on_submit():
        return _bad_request()
    settings = store.settings_for(g.account_id)
    credential = store.credential_for(g.account_id, settings.credential_id) if settings.credential_id else None
    if credential is None:
        flash("Сначала добавьте и выберите учетные данные Мегаплан.", "warning")
    else:
        for ok, text in panel.check_connection(credential):
            flash(text, "success" if ok else "danger")
    return redirect(url_for("megaplan.settings") + "#status")


def _later(enqueue, *args) -> None:
    """Background work of a save (the client index, callUserConfig records)."""
    try:
        enqueue(*args)
    except RedisError:
        current_app.logger.warning("megaplan: Redis unavailable; %s waits for the next save or schedule",
                                   enqueue.__name__)


def _forget_cached(account_id: str) -> None:
    """Hooks and routing read settings and mappings from memory; this process forgets now."""
    state = current_app.extensions["megaplan"]
    state.hook_settings.forget(account_id)
    state.routes.forget(account_id)


def _fill_choices(form: SettingsForm, credentials, employees) -> None:
    form.credential_id.choices = [(c.id, f"{c.title} ({c.domain})") for c in credentials]
    people = [NOBODY] + [(e.megaplan_id, e.name) for e in employees]
    form.default_responsible_id.choices = people
    form.unknown_employee_user_id.choices = people
    form.supervisor_id.choices = people
    form.virtual_numbers.choices = [(n, n) for n in cabinet.host().pbx.virtual_numbers(g.account_id)]


def _render(*, form, settings, credentials, employees, status=200):
    host = cabinet.host()
    mapping = employee_table.employee_mapping(g.account_id, host.pbx.users(g.account_id), employees)
    return render_template(
        "megaplan/settings.html", form=form, settings=settings, credentials=credentials,
        employees=employees, mapping=mapping, action_form=ActionForm(),
        default_responsible=next((e for e in employees if e.megaplan_id == settings.default_responsible_id), None),
        unknown_user=next((e for e in employees if e.megaplan_id == settings.unknown_employee_user_id), None),
        new_secret=one_time.take(g.account_id, session.pop(SECRET_TICKET, None)),
        secret_replaced=session.pop(SECRET_REPLACED, False),
        panel=panel.account_status(g.account_id), waiting_words=panel.waiting_words,
        owed=_owed_since_deactivation(settings),
        shared=numbers.for_page(g.account_id),
        local_moment=lambda moment: timezones.local(moment, settings.time_zone),
        local_time=lambda iso: timezones.local(datetime.fromisoformat(iso), settings.time_zone) if iso else "",
        call_url=url_for("megaplan_api.call", account_key=settings.api_key, _external=True),
        hangup_url=url_for("megaplan_api.hangup", account_key=settings.api_key, _external=True),
    ), status


def _owed_since_deactivation(settings) -> int:
    """Calls not sent while the integration was off, once it is on again (0: nothing to offer)."""
    if settings.deactivated_at is None or not rules.active(settings):
        return 0
    session = cabinet.host().db.session
    return session.execute(select(func.count()).select_from(
        outbox.skipped_while_inactive(g.account_id, settings.deactivated_at).subquery())).scalar()


def _credential_or_404(credential_id: int):
    # An id no integer column can hold is simply not there (and never reaches the database).
    credential = store.credential_for(g.account_id, credential_id) if db_int(credential_id) else None
    if credential is None:
        abort(404)
    return credential


def _select_if_first(credential_id: int) -> None:
    settings = store.settings_for(g.account_id)
    if settings.credential_id is None:
        settings.credential_id = credential_id
        cabinet.host().db.session.commit()


def _bad_request():
    flash("Форма устарела: обновите страницу и повторите.", "danger")
    return redirect(url_for("megaplan.settings")), 303
