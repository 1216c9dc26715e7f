"""A cabinet app on clean tables for a benchmark (DATABASE_URL / REDIS_URL when set)."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host_stub import create_app  # noqa: E402
from host_stub.config import _database_url  # noqa: E402
from host_stub.db import db  # noqa: E402
from host_stub.seed import seed_demo_data  # noqa: E402
from megaplan_plugin import migrations  # noqa: E402
from megaplan_plugin.models import Base  # noqa: E402
from sqlalchemy import text  # noqa: E402


def fresh_app(**config):
    database = os.environ.get("DATABASE_URL")
    uri = _database_url(database, None) if database else f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    pbx = tempfile.mkdtemp()  # a fresh PBX for every bench app
    app = create_app({"SQLALCHEMY_DATABASE_URI": uri, "PBX_DATABASE_URL": f"sqlite:///{pbx}/pbx.sqlite3",
                      "PBX_RECORDINGS_DIR": f"{pbx}/recordings", "REDIS_URL": os.environ.get("REDIS_URL"),
                      "MEGAPLAN_EMBEDDED_WORKER": False, "MEGAPLAN_ALLOW_HTTP": True, **config})
    with app.app_context():
        # Clean tables: the plugin's (and its migration history), then the host's.
        Base.metadata.drop_all(db.engine)
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
        db.drop_all()
        db.create_all()
        migrations.upgrade(db.engine)
        seed_demo_data()
        app.extensions["cabinet"].set_plugin_enabled("demo", "megaplan", True)
    app.extensions["megaplan"].redis.flushdb()
    return app
