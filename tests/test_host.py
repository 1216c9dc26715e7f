"""The cabinet shell: login, the plugin list, enable/disable per account, tenant isolation."""
import pytest

from host_stub.testing import csrf_token


def test_login_page_is_russian_and_rejects_a_wrong_password(client):
    page = client.get("/login")
    assert page.status_code == 200
    assert "Вход в личный кабинет" in page.text
    bad = client.post("/login", data={"login": "demo", "password": "nope"})
    assert bad.status_code == 401
    assert "Неверный логин или пароль" in bad.text
    assert client.get("/plugins/").status_code == 302


def test_pages_require_login_and_redirect_back(client, auth):
    response = client.get("/simulator/")
    assert response.status_code == 302 and "/login" in response.location
    assert auth.login().status_code == 302
    assert client.get("/simulator/").status_code == 200


def test_login_does_not_redirect_off_site(client):
    response = client.post("/login?next=//evil.example/", data={"login": "demo", "password": "demo"})
    assert response.location == "/"


def test_cabinet_page_shows_the_crm_push_address_and_token(logged_in):
    page = logged_in.get("/", follow_redirects=True)
    assert "/pbx/demo/crm" in page.text
    assert "demo-crm-token" in page.text
    assert "Иван Иванов" in page.text and "74950000001" in page.text


def test_demo_data_matches_the_contract(app):
    host = app.extensions["cabinet"]
    with app.app_context():
        users = {u.login: (u.name, u.ext) for u in host.pbx.users("demo")}
        assert users == {"ivanov": ("Иван Иванов", "101"), "petrova": ("Мария Петрова", "102"),
                         "sidorov": ("Пётр Сидоров", "103")}
        assert host.pbx.virtual_numbers("demo") == ["74950000001", "74950000002"]
        assert host.pbx.users("other") and host.pbx.virtual_numbers("other")


def test_plugin_list_enables_and_disables_per_account(client, auth, app):
    auth.login()
    page = client.get("/plugins/")
    assert "Интеграция с Мегаплан" in page.text and "Подключить" in page.text
    assert client.get("/plugins/megaplan/").status_code == 404

    assert client.post("/plugins/", data={"key": "megaplan", "enable": "y"}).status_code == 302
    page = client.get("/plugins/")
    assert "Отключить" in page.text and "/plugins/megaplan/" in page.text
    settings = client.get("/plugins/megaplan/")
    assert settings.status_code == 200 and "Интеграция с Мегаплан" in settings.text
    assert 'class="topbar"' in settings.text  # inside the cabinet layout

    auth.logout()
    auth.login("other")
    assert "Подключить" in client.get("/plugins/").text  # still off for the other account
    assert client.get("/plugins/megaplan/").status_code == 404

    auth.logout()
    auth.login()
    client.post("/plugins/", data={"key": "megaplan"})
    assert client.get("/plugins/megaplan/").status_code == 404


def test_unknown_plugin_key_is_a_bad_request(logged_in):
    assert logged_in.post("/plugins/", data={"key": "nope", "enable": "y"}).status_code == 400


def test_another_accounts_cabinet_page_is_forbidden(client, auth):
    auth.login("other")
    assert client.get("/accounts/demo/").status_code == 403
    assert client.get("/accounts/other/").status_code == 200


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_forms_require_a_csrf_token(client, app_config):
    page = client.get("/login")
    assert client.post("/login", data={"login": "demo", "password": "demo"}).status_code == 400
    token = csrf_token(page.text)
    response = client.post("/login", data={"login": "demo", "password": "demo", "csrf_token": token})
    assert response.status_code == 302
    assert client.post("/plugins/", data={"key": "megaplan", "enable": "y"}).status_code == 400


def test_every_page_has_the_cabinets_favicon(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'rel="icon"' in page and "favicon.svg" in page
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.content_type.startswith("image/svg+xml")
