"""Demo data of CONTRACT §7, created on first run and relied on by demos and tests."""
from __future__ import annotations

import os

from sqlalchemy.exc import IntegrityError

from .db import db
from .models import Account
from .types import PbxUser

DEMO_USERS = [
    ("ivanov", "Иван Иванов", "101", None),
    ("petrova", "Мария Петрова", "102", None),
    ("sidorov", "Пётр Сидоров", "103", None),
]
OTHER_USERS = [
    ("smirnov", "Алексей Смирнов", "201", None),
]


def seed_demo_data(pbx_store) -> None:
    """Seed an empty cabinet database and an empty PBX store; create_app serialises this
    across processes (a start-up lock), and each side also refuses a second seeding itself.

    Passwords are hashed with ``CABINET_PASSWORD_HASH_METHOD`` (see ``Account.set_password``).
    """
    demo_token = os.environ.get("CABINET_DEMO_CRM_TOKEN", "demo-crm-token")
    pbx_store.add_account("demo", demo_token, [PbxUser(*u) for u in DEMO_USERS],
                          ["74950000001", "74950000002"])
    pbx_store.add_account("other", "other-crm-token", [PbxUser(*u) for u in OTHER_USERS], ["74950000009"])
    if db.session.query(Account.id).first() is not None:
        return
    _account("demo", "ООО «Демо»", "demo")
    _account("other", "ООО «Другая компания»", "other")
    try:
        db.session.commit()
    except IntegrityError:
        # Another process seeded first (a database where the start-up lock does not reach).
        db.session.rollback()
        if db.session.query(Account.id).first() is None:
            raise


def _account(name, title, password) -> Account:
    account = Account(name=name, title=title)
    account.set_password(password)
    db.session.add(account)
    return account
