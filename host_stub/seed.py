"""Demo data of CONTRACT §7, created on first run and relied on by demos and tests."""
from __future__ import annotations

import os

from sqlalchemy.exc import IntegrityError

from .db import db
from .models import Account, PbxUserRow, VirtualNumber

DEMO_USERS = [
    ("ivanov", "Иван Иванов", "101", None),
    ("petrova", "Мария Петрова", "102", None),
    ("sidorov", "Пётр Сидоров", "103", None),
]
OTHER_USERS = [
    ("smirnov", "Алексей Смирнов", "201", None),
]


def seed_demo_data() -> None:
    """Seed an empty database; create_app serialises this across processes (a start-up lock).

    Passwords are hashed with ``CABINET_PASSWORD_HASH_METHOD`` (see ``Account.set_password``).
    """
    if db.session.query(Account.id).first() is not None:
        return
    demo_token = os.environ.get("CABINET_DEMO_CRM_TOKEN", "demo-crm-token")
    _account("demo", "ООО «Демо»", "demo", demo_token, DEMO_USERS, ["74950000001", "74950000002"])
    _account("other", "ООО «Другая компания»", "other", "other-crm-token", OTHER_USERS, ["74950000009"])
    try:
        db.session.commit()
    except IntegrityError:
        # Another process seeded first (a database where the start-up lock does not reach).
        db.session.rollback()
        if db.session.query(Account.id).first() is None:
            raise


def _account(name, title, password, crm_token, users, numbers) -> Account:
    account = Account(name=name, title=title, crm_token=crm_token)
    account.set_password(password)
    account.users = [PbxUserRow(login=l, name=n, ext=e, telnum=t) for l, n, e, t in users]
    account.numbers = [VirtualNumber(number=n) for n in numbers]
    db.session.add(account)
    return account
