"""Every point the reference marks UNCONFIRMED, decided here and only here.

Each constant says what we assume and why; change it here when a live account says otherwise.
"""
from __future__ import annotations

from datetime import date, datetime

# Megaplan's own docs show numbers as 79991231212 (no "+"); that is what we send in CallInfo
# and in searches.
def phone_for_megaplan(digits: str) -> str:
    return digits


# Failed outgoing calls: RAML's type enum has "fail"; its exact meaning is not documented.
FAILED_OUTGOING_CALL_TYPE = "fail"

# callRoute returns employees "with their data"; where the internal number sits is not
# documented, and Megaplan's schema gives Employee no internal number at all: the account's
# CallUserConfig list is the path that matters. An `internalNumber` attribute is still read
# first, should a live account send one.
CALL_ROUTE_INTERNAL_NUMBER_FIELD = "internalNumber"

# Search by phone: contractorCompany/search "by name or contacts" returns both subtypes.
CONTRACTOR_SEARCH_PATH = "/api/v3/contractorCompany/search"

# Access tokens live 48 h; refresh this long before expiry so a job never starts with a
# token that dies mid-request.
REFRESH_MARGIN_SECONDS = 300

# The only sample shows phones in contactInfo as "+7…"; we store new clients' numbers so.
def contact_phone_value(digits: str) -> str:
    return "+" + digits


# Collections and search return "shortened cards": only the fields marked for collections
# (reference §8, docs/megaplan.md). We always ask for what we read, and (Megaplan's schema
# wins over our first reading, which asked companies for name parts) only what the type has:
# a company has no firstName/lastName/middleName, and asking for them is reported to give 422.
COMPANY_FIELDS = ["name", "contactInfo", "responsibles", "timeUpdated"]
HUMAN_FIELDS = COMPANY_FIELDS + ["firstName", "lastName", "middleName"]
CONTRACTOR_FIELDS = {"contractorCompany": COMPANY_FIELDS, "contractorHuman": HUMAN_FIELDS,
                     # the search answers both kinds; a field of either may be asked
                     "search": HUMAN_FIELDS}

# Sorting: the RAML marks no sortable field we could rely on (not even `id`), so lists are
# read unsorted, page by page with `pageAfter` (reference §8).
LIST_SORT = None

# A provider id Megaplan does not know: no documented not-found code for
# GET /callInfo/provider (docs list 200, 403, 422); live servers answer 404. Both mean "none".
NOT_FOUND_STATUSES = (404, 422)

# callRoute.employees: Employee[] in the RAML, one object in the dev.megaplan.ru sample.
def route_employees(value) -> list:
    if isinstance(value, dict):
        return [value]
    return [e for e in value or [] if isinstance(e, dict)]

# Finishing a todo: `POST /todo/{id}/doAction` with a TodoFinishActionRequest. Megaplan's
# schema settles what our first reading left open: it carries `resultText`, saved as the
# todo's result comment, so finishing and saying why is one request, not two.
def todo_finish_action(result_text: str) -> dict:
    return {"contentType": "TodoFinishActionRequest", "resultText": result_text}

# POST /callInfo/history takes CallInfo[] (RAML) with no documented limit on its length;
# lists answer 100 items by default (reference §5), so a batch of finished calls is as long.
HISTORY_BATCH_SIZE = 100

# Uploading a file: not in Megaplan's v3 schema. The public SDK posts multipart part `files[]`
# to `/api/file` (outside /api/v3) and takes `data[0]` as the File (reference §3.6).
UPLOAD_PATH = "/api/file"
UPLOAD_PART = "files[]"

# A recording copied without a communication to attach it to goes into the client card's
# `attaches`, not a comment on the client: comments on clients answer 500 live (reference
# pitfall 5).
COPY_WITHOUT_TODO = "client_card"

# A callback todo's deadline: Megaplan's schema gives a todo's time as `when`
# (IntervalDates|IntervalTime, both opaque in the RAML), and public notes say setting `when` on
# create fails with 422 in every shape tried. So the deadline goes into the todo's
# `description`, and the plugin keeps it itself (megaplan_callback.due_at) for the escalation.
# Should a live account take `when`, this is the one place to change.
def callback_deadline_fields(text: str) -> dict:
    return {"description": text}

# A DateOnly ({"year", "month", "day"}): Megaplan's schema says nothing of the month's base;
# its official example writes January as 0 (reference pitfall 14), so months are read and
# written 0-based. An employee's vacation and a fire day are read through this one function.
DATE_ONLY_MONTH_BASE = 0


def date_only(value) -> date | None:
    """A DateOnly (or a DateTime, whose date counts) as a ``date``; None when it is neither."""
    if not isinstance(value, dict):
        return None
    if value.get("contentType") == "DateTime" or "value" in value:
        try:
            return datetime.fromisoformat(str(value.get("value"))).date()
        except ValueError:
            return None
    try:
        return date(int(value["year"]), int(value["month"]) + 1 - DATE_ONLY_MONTH_BASE, int(value["day"]))
    except (KeyError, TypeError, ValueError):
        return None


# What an employee's absence is read from: Megaplan's schema gives `isWorking`, `fireDay` and
# `nearestVacation` (a Vacation with firstDay/lastDay), and no working schedule of a person
# (`Schedule` is opaque); whether collections carry them unasked is not documented, so the
# employee list asks for them by name.
EMPLOYEE_ABSENCE_FIELDS = ["isWorking", "fireDay", "nearestVacation"]

# Open deals: the schema has no contractor parameter on GET /deal and no documented filter
# term for "open" (reference §9), and asking per client (/contractor/{id}/deals) would be a
# request per client. So the index reads GET /deal page by page with the fields it needs and
# keeps the deals whose `result` is "active" (a deal with no result yet is open too).
DEALS_PATH = "/api/v3/deal"
DEAL_FIELDS = ["name", "contractor", "manager", "result", "timeUpdated"]


def deal_is_open(deal: dict) -> bool:
    return deal.get("result") in (None, "active")

# Pages of Megaplan's web interface for the journal's links: not in the API's description.
# Public screenshots and integrators' notes show a client's card at /crm/{id}/card/, a deal's
# at /deals/{id}/card/ and a todo's (a communication) at /event/{id}/card/; a call has no page
# of its own (it is shown in its client's card and its communication's).
WEB_PAGES = {"ContractorHuman": "/crm/{id}/card/", "ContractorCompany": "/crm/{id}/card/",
             "Deal": "/deals/{id}/card/", "Todo": "/event/{id}/card/"}


def web_page(base_url: str, content_type: str, entity_id) -> str | None:
    pattern = WEB_PAGES.get(content_type)
    return base_url.rstrip("/") + pattern.format(id=entity_id) if pattern and entity_id else None
