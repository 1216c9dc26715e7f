"""The value types Megaplan's JSON speaks (links, dates, contact info), built and read."""
from __future__ import annotations

from datetime import datetime

from megaplan_plugin import phones

from . import unconfirmed


def link(content_type: str, entity_id) -> dict:
    return {"contentType": content_type, "id": str(entity_id)}


def datetime_value(value: datetime) -> dict:
    return {"contentType": "DateTime", "value": value.isoformat(timespec="seconds")}


def contact_phone(digits: str) -> dict:
    return {"contentType": "ContactInfo", "type": "phone",
            "value": unconfirmed.contact_phone_value(digits), "isMain": True}


def entity_name(entity: dict, kind: str) -> str:
    """A person's or company's name as Megaplan shows it: ``name``, else last, first and middle
    name; ``kind`` («Клиент», «Сотрудник») with the id when it has none."""
    if entity.get("name"):
        return str(entity["name"])
    parts = [entity.get("lastName"), entity.get("firstName"), entity.get("middleName")]
    return " ".join(str(p) for p in parts if p) or f"{kind} {entity.get('id')}"


def contractor_phones(contractor: dict) -> set[str]:
    """The national numbers of a contractor's phones: the client index's keys."""
    return {n for n in (phones.national(info.get("value")) for info in contractor.get("contactInfo") or []
                        if isinstance(info, dict) and info.get("type") == "phone") if n}
