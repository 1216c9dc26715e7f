"""The settings page: every setting of the seed, validated on the server, per account."""
import re

import pytest

from host_stub.db import db
from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD, csrf_token
from megaplan_plugin.models import Credential, Settings

SEED_LABELS = [
    "Учетные данные", "Добавить учетные данные", "Активировать интеграцию",
    "Фильтровать по виртуальным номерам", "Список виртуальных номеров",
    "Ответственный по умолчанию", "Включить переадресацию на персонального менеджера",
    "При входящем звонке с неизвестного номера в Мегаплан будет создан новый клиент",
    "При исходящем звонке на неизвестный номер в Мегаплане будет создан новый контакт",
    "Создавать коммуникацию по звонку",
    "История звонков сотрудников компании, не присутствующих в Мегаплан, будет сохранена от имени выбранного пользователя",
    "Телефония МегаФон 2.0", "Сохранить",
]


def _settings(app, account="demo"):
    with app.app_context():
        return db.session.get(Settings, account)


def _full_form(**overrides):
    data = {"credential_id": "1", "active": "y", "filter_by_numbers": "y",
            "virtual_numbers": ["74950000002"], "default_responsible_id": "1000003",
            "route_to_manager": "y", "create_client_on_incoming": "y",
            "create_contact_on_outgoing": "y", "create_communication": "y",
            "communication_types": ["in", "missed"], "save_unknown_employees": "y",
            "unknown_employee_user_id": "1000002"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_before_credentials_only_step_one_is_shown(logged_in, enable_plugin):
    enable_plugin()
    page = logged_in.get("/plugins/megaplan/").text
    assert "Добавить учетные данные" in page
    assert "Параметры интеграции" not in page.split("</p>", 3)[-1] or "Активировать интеграцию" not in page


def test_adding_credentials_checks_them_and_reveals_the_parameters(configured, app, megaplan_sandbox):
    page = configured.get("/plugins/megaplan/").text
    for label in SEED_LABELS:
        assert label in page, label
    # Every field has a real <label for=…>.
    for field_id in ("active", "filter_by_numbers", "default_responsible_id", "route_to_manager",
                     "create_client_on_incoming", "create_contact_on_outgoing",
                     "create_communication", "save_unknown_employees", "unknown_employee_user_id"):
        assert f'<label for="{field_id}"' in page, field_id
    assert "Иван Иванов" in page and "Мария Петрова" in page  # employees loaded from Megaplan
    with app.app_context():
        credential = db.session.execute(db.select(Credential)).scalar_one()
        assert SANDBOX_PASSWORD not in credential.password_enc  # encrypted at rest
        assert credential.access_token_enc and credential.refresh_token_enc
    assert SANDBOX_PASSWORD not in page


def test_every_option_is_saved_and_kept(configured, app):
    response = configured.post("/plugins/megaplan/", data=_full_form())
    assert response.status_code == 302
    settings = _settings(app)
    assert settings.active and settings.filter_by_numbers and settings.route_to_manager
    assert settings.virtual_numbers == ["74950000002"]
    assert settings.default_responsible_id == "1000003"
    assert settings.create_client_on_incoming and settings.create_contact_on_outgoing
    assert settings.create_communication and settings.communication_types == ["in", "missed"]
    assert settings.save_unknown_employees and settings.unknown_employee_user_id == "1000002"
    page = configured.get("/plugins/megaplan/").text
    assert re.search(r'id="active"[^>]*checked|checked[^>]*id="active"', page)
    assert re.search(r'value="1000003" selected|selected value="1000003"', page) or \
        'option selected value="1000003"' in page

    configured.post("/plugins/megaplan/", data=_full_form(
        active=None, filter_by_numbers=None, virtual_numbers=[], route_to_manager=None,
        create_communication=None, communication_types=[], save_unknown_employees=None,
        unknown_employee_user_id=""))
    settings = _settings(app)
    assert not settings.active and not settings.filter_by_numbers and not settings.route_to_manager
    assert not settings.create_communication and not settings.save_unknown_employees


@pytest.mark.parametrize("overrides,field,message", [
    ({"filter_by_numbers": "y", "virtual_numbers": []}, "virtual_numbers", "хотя бы один"),
    ({"virtual_numbers": ["74950000009"]}, "virtual_numbers", "Недопустимое значение"),  # other's number
    ({"default_responsible_id": "999"}, "default_responsible_id", "Неверный вариант"),
    ({"default_responsible_id": ""}, "default_responsible_id", "Выберите ответственного"),
    ({"create_communication": "y", "communication_types": []}, "communication_types", "типы звонков"),
    ({"communication_types": ["sms"]}, "communication_types", "Недопустимое значение"),
    ({"save_unknown_employees": "y", "unknown_employee_user_id": ""}, "unknown_employee_user_id", "пользователя"),
    ({"credential_id": "999"}, "credential_id", "Неверный вариант"),
])
def test_invalid_settings_show_a_russian_error_beside_the_field(configured, app, overrides, field, message):
    response = configured.post("/plugins/megaplan/", data=_full_form(**overrides))
    assert response.status_code == 400
    block = response.text.split(f'id="field-{field}"', 1)[1].split("</div>", 1)[0] \
        if f'id="field-{field}"' in response.text else ""
    assert message in block, response.text[:200]
    assert not _settings(app).active  # nothing saved


@pytest.mark.parametrize("fields,field,message", [
    ({"password": "wrong"}, "password", "Неверный логин или пароль Мегаплан"),
    ({"login": "nobody@example.ru"}, "password", "Неверный логин или пароль Мегаплан"),
    ({"domain": "example.com"}, "domain", "YOURDOMAIN.megaplan.ru"),
    ({"domain": "http://127.0.0.1:1"}, "domain", "не отвечает"),
    ({"title": ""}, "title", "Укажите название"),
    ({"password": ""}, "password", "Укажите пароль"),
])
def test_bad_credentials_show_the_error_and_keep_what_was_typed(
        logged_in, enable_plugin, megaplan_sandbox, fields, field, message):
    enable_plugin()
    data = {"title": "Мой Мегаплан", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD,
            "domain": megaplan_sandbox.url, **fields}
    response = logged_in.post("/plugins/megaplan/credentials/new", data=data)
    assert response.status_code == 400
    block = response.text.split(f'id="field-{field}"', 1)[1].split("</div>", 1)[0]
    assert message in block
    assert f'value="{data["login"]}"' in response.text  # what was typed is kept...
    assert SANDBOX_PASSWORD not in response.text         # ...except the password


def test_an_https_sandbox_address_is_told_it_wants_http(logged_in, enable_plugin):
    enable_plugin()
    page = logged_in.get("/plugins/megaplan/credentials/new").text
    assert "Для песочницы Мегаплан (демо и тесты) — адрес вида http://127.0.0.1:5001." in page
    response = logged_in.post("/plugins/megaplan/credentials/new", data={
        "title": "t", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD, "domain": "https://127.0.0.1:5199"})
    assert response.status_code == 400
    block = response.text.split('id="field-domain"', 1)[1].split("</div>", 1)[0]
    assert "песочница Мегаплан — адрес вида http://127.0.0.1:5001 (http, не https)" in block


@pytest.mark.parametrize("app_config", [{"MEGAPLAN_ALLOW_HTTP": False}])
def test_http_domains_are_refused_unless_allowed(logged_in, enable_plugin, megaplan_sandbox, app_config):
    enable_plugin()
    response = logged_in.post("/plugins/megaplan/credentials/new", data={
        "title": "t", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD,
        "domain": megaplan_sandbox.url})
    assert response.status_code == 400 and "YOURDOMAIN.megaplan.ru" in response.text


def test_credentials_can_be_edited_and_deleted_with_confirmation_when_in_use(configured, app):
    page = configured.get("/plugins/megaplan/credentials/1")
    assert page.status_code == 200 and "Песочница" in page.text
    assert SANDBOX_PASSWORD not in page.text
    response = configured.post("/plugins/megaplan/credentials/1", data={
        "title": "Основной", "login": SANDBOX_LOGIN, "password": "",
        "domain": page.text.split('id="domain"')[1].split('value="')[1].split('"')[0]})
    assert response.status_code == 302, response.text
    configured.post("/plugins/megaplan/", data=_full_form())
    assert _settings(app).credential_id == 1

    response = configured.post("/plugins/megaplan/credentials/1/delete", data={})
    assert response.status_code == 302 and "/credentials/1" in response.location
    with app.app_context():
        assert db.session.get(Credential, 1).title == "Основной"
    configured.post("/plugins/megaplan/credentials/1/delete", data={"confirm": "y"})
    with app.app_context():
        assert db.session.get(Credential, 1) is None
    settings = _settings(app)
    assert settings.credential_id is None and not settings.active


def test_employee_mapping_shows_matches_and_warnings(configured):
    configured.post("/plugins/megaplan/", data=_full_form(save_unknown_employees=None,
                                                          unknown_employee_user_id=""))
    page = configured.get("/plugins/megaplan/").text
    mapping = page.split('id="mapping"')[1].split("</section>")[0]
    rows = mapping.split("<tr")[2:]
    assert len(rows) == 3
    assert all("нет совпадения" not in row for row in rows)  # 101-103 exist in the sandbox


def test_unmapped_employee_gets_a_warning_saying_what_happens(configured, app, megaplan_sandbox):
    megaplan_sandbox.state.remove_call_user_config("1000004") if hasattr(
        megaplan_sandbox.state, "remove_call_user_config") else pytest.skip("sandbox lacks helper")
    configured.post("/plugins/megaplan/employees/refresh", data={})
    page = configured.get("/plugins/megaplan/").text
    row = [r for r in page.split('id="mapping"')[1].split("<tr") if "sidorov" in r][0]
    assert "нет совпадения" in row and "переадресация" in row


def test_secret_is_shown_once_and_then_masked(configured, app):
    response = configured.post("/plugins/megaplan/secret", data={}, follow_redirects=True)
    secret = re.search(r'id="new-secret">([^<]+)<', response.text).group(1)
    assert "Прежний ключ уже не действует" not in response.text  # the first key replaced none
    page = configured.get("/plugins/megaplan/").text
    assert secret not in page and secret[-4:] in page
    settings = _settings(app)
    assert f"/plugins/megaplan/api/{settings.api_key}/call" in page
    assert f"/plugins/megaplan/api/{settings.api_key}/hangup" in page
    again = configured.post("/plugins/megaplan/secret", data={}, follow_redirects=True)
    assert _settings(app).api_secret_hash != settings.api_secret_hash
    assert "Прежний ключ уже не действует" in again.text
    assert 'id="call-url">http' in page  # the address alone, to copy (no «POST » in front)


def test_other_account_can_neither_see_nor_change_demos_settings(configured, app, client, auth, enable_plugin):
    configured.post("/plugins/megaplan/", data=_full_form())
    auth.logout()
    auth.login("other")
    enable_plugin("other")
    page = client.get("/plugins/megaplan/").text
    assert "Песочница" not in page and "Добавить учетные данные" in page
    assert client.get("/plugins/megaplan/credentials/1").status_code == 404
    assert client.post("/plugins/megaplan/credentials/1/delete", data={"confirm": "y"}).status_code == 404
    assert client.post("/plugins/megaplan/", data=_full_form()).status_code == 400  # not its credential
    with app.app_context():
        assert db.session.get(Credential, 1) is not None
    assert _settings(app).active


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_settings_forms_require_csrf(configured, app, app_config):
    assert configured.post("/plugins/megaplan/", data=_full_form()).status_code == 400
    assert configured.post("/plugins/megaplan/secret", data={}).status_code in (303, 400)
    assert _settings(app).api_secret_hash is None
    token = csrf_token(configured.get("/plugins/megaplan/").text)
    assert configured.post("/plugins/megaplan/", data={**_full_form(), "csrf_token": token}).status_code == 302


def test_a_pbx_employee_linked_by_hand_gets_a_call_user_config_in_megaplan(
        app, integration, megaplan_sandbox, rq_worker):
    state = megaplan_sandbox.state
    sidorov = next(e for e in state.employees if state.internal_number_of(e) == "103")
    ivanov = next(e for e in state.employees if state.internal_number_of(e) == "101")
    state.remove_call_user_config(sidorov)  # Пётр Сидоров has no telephony number in Megaplan
    client = integration()
    assert client.post("/plugins/megaplan/employees/refresh").status_code == 302
    page = client.get("/plugins/megaplan/").text
    assert 'for="link-sidorov"' in page and 'name="link-ivanov"' not in page  # only the unmatched
    before = dict(state.call_user_configs)
    integration(**{"link-sidorov": sidorov})
    rq_worker()
    assert state.internal_number_of(sidorov) == "103"  # written by the plugin
    assert state.internal_number_of(ivanov) == "101"  # the others untouched
    assert {k: v for k, v in state.call_user_configs.items() if k in before} == before
    page = client.get("/plugins/megaplan/").text
    assert "внутренний номер записан в Мегаплан интеграцией" in page


def test_a_link_never_overwrites_a_number_someone_set_in_megaplan_meanwhile(
        app, integration, megaplan_sandbox, rq_worker):
    state = megaplan_sandbox.state
    sidorov = next(e for e in state.employees if state.internal_number_of(e) == "103")
    state.remove_call_user_config(sidorov)
    client = integration()
    client.post("/plugins/megaplan/employees/refresh")
    integration(**{"link-sidorov": sidorov})
    state.set_internal_number(sidorov, "555")  # an admin set it up in Megaplan before the job ran
    rq_worker()
    assert state.internal_number_of(sidorov) == "555"


def test_a_saved_change_reaches_the_hooks_of_every_process_within_a_second(
        configured, app, make_app, integration, monkeypatch):
    """Hooks keep settings in memory for long (a thousand accounts must not re-read them);
    saving bumps a generation in Redis that every process checks at most once a second."""
    from megaplan_plugin.calls import rules
    if app.extensions["megaplan"].embedded:
        pytest.skip("two processes share a Redis only when REDIS_URL is set")
    worker = make_app()  # another process of the same cabinet: same database, same Redis
    cache = worker.extensions["megaplan"].hook_settings
    monkeypatch.setattr(rules, "CHECK_SECONDS", 3600.0)  # time stands still …
    with worker.app_context():
        assert cache.get(db.engine, "demo").active
    integration(active=None)  # the admin turns the integration off
    with worker.app_context():
        assert cache.get(db.engine, "demo").active  # within the second: the copy in memory
        monkeypatch.setattr(rules, "CHECK_SECONDS", 0.0)  # … the second has passed
        assert not cache.get(db.engine, "demo").active
