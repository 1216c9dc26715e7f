"""The wheel carries the plugin with its templates, and a host finds it from the wheel alone."""
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    # Build from a copy so the checkout's build/ and egg-info never leak into the wheel.
    src = build / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "instance", "test-artifacts"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True)
    (found,) = out.glob("*.whl")
    return found


def test_wheel_holds_the_plugin_its_templates_and_static_files_and_no_host(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "megaplan_plugin/hooks.py" in names
    assert "megaplan_plugin/templates/megaplan/settings.html" in names
    assert "megaplan_plugin/static/megaplan/megaplan.css" in names
    assert not [n for n in names if n.startswith(("host_stub/", "tests/", "templates/", "bench/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[cabinet.plugins]" in text and "megaplan = megaplan_plugin.hooks" in text


def test_host_discovers_the_installed_wheel_and_renders_its_pages(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True)
    # The host runs from a checkout that has no megaplan_plugin folder: only the wheel has it.
    checkout = tmp_path / "cabinet"
    for part in ("host_stub", "templates", "static"):
        shutil.copytree(ROOT / part, checkout / part)
    script = textwrap.dedent(f"""
        import megaplan_plugin
        assert megaplan_plugin.__file__.startswith({str(site)!r}), megaplan_plugin.__file__
        from host_stub import create_app
        app = create_app({{"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                          "WTF_CSRF_ENABLED": False, "MEGAPLAN_EMBEDDED_WORKER": False}})
        assert "megaplan" in app.extensions["cabinet"].plugins
        c = app.test_client()
        assert c.post("/login", data={{"login": "demo", "password": "demo"}}).status_code == 302
        assert "Интеграция с Мегаплан" in c.get("/plugins/").text
        c.post("/plugins/", data={{"key": "megaplan", "enable": "y"}})
        page = c.get("/plugins/megaplan/")
        assert page.status_code == 200 and "Учетные данные" in page.text, page.text
        css = c.get("/plugins/megaplan/static/megaplan/megaplan.css")
        assert css.status_code == 200
        print("OK")
    """)
    env = {"PYTHONPATH": f"{site}:{checkout}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONNOUSERSITE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
