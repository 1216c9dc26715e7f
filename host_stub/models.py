"""The cabinet's own tables: accounts, their PBX employees and numbers, enabled plugins."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .db import db


class Account(db.Model):
    __tablename__ = "cabinet_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    crm_token: Mapped[str] = mapped_column(String(128))

    users: Mapped[list[PbxUserRow]] = relationship(
        back_populates="account", order_by="PbxUserRow.ext", cascade="all, delete-orphan")
    numbers: Mapped[list[VirtualNumber]] = relationship(
        order_by="VirtualNumber.number", cascade="all, delete-orphan")

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class PbxUserRow(db.Model):
    __tablename__ = "cabinet_pbx_user"
    __table_args__ = (UniqueConstraint("account_id", "login"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("cabinet_account.id"))
    login: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    ext: Mapped[str | None] = mapped_column(String(16))
    telnum: Mapped[str | None] = mapped_column(String(16))

    account: Mapped[Account] = relationship(back_populates="users")


class VirtualNumber(db.Model):
    __tablename__ = "cabinet_virtual_number"
    __table_args__ = (UniqueConstraint("account_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("cabinet_account.id"))
    number: Mapped[str] = mapped_column(String(16))


class EnabledPlugin(db.Model):
    __tablename__ = "cabinet_enabled_plugin"
    __table_args__ = (UniqueConstraint("account_id", "plugin_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("cabinet_account.id"))
    plugin_key: Mapped[str] = mapped_column(String(64))
