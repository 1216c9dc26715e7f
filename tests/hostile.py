"""What hostile clients send, for the hostile-input and endpoint fuzz tests: strategies and the
encoders that put values no well-behaved client can encode (lone surrogates, invalid UTF-8)
into forms, queries and JSON bodies as raw bytes."""
import json
import os
from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "15"))
HOSTILE = settings(max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large, HealthCheck.large_base_example])
LIMIT = 1024 * 1024  # CABINET_MAX_CONTENT_LENGTH's default
DB_INT_MAX = 2**31 - 1

# -- strategies -------------------------------------------------------------------------------

NASTY_CHARS = ["\x00", "\x01", "\x08", "\x1b", "\x1f", "\x7f", "\x85", "\x9f", "\t", "\n", "\r",
               "\ud800", "\udbff", "\udc00", "\udfff", "\u202e", "\u2028", "\ufeff", "\ufffe",
               "\uffff", "\U0010ffff", "²", "¹", "٣", "१", "১", "𝟙", "①", "７", "'", '"', "<", ">", "&", "%", "\\", "/", ";", "😀", "й"]
nasty_char = st.one_of(st.sampled_from(NASTY_CHARS), st.characters(categories=["Cc", "Cs"]),
                       st.characters())
EDGE_STRINGS = ["", " ", "\x00", "a\x00b", "\ud800", "1\udfff", "%00", "%", "%ff", "0", "-1",
                "2147483647", "2147483648", "-2147483649", "9223372036854775808",
                "99999999999999999999", "7" * 20, "+7" + "9" * 18, "1²", "²", "4²", "٣٠", "१२३", "１２", "1e308", "NaN", "0x10", "٣", "null", "[]", "{}",
                "0001-01-01", "9999-12-31", "2026-02-30", "<script>alert(1)</script>",
                "' OR 1=1 --", "../../etc/passwd", "failed", "pending", "sent", "skipped",
                "79161234567", "+7 (916) 123-45-67", "101", "1000002"]
hostile_text = st.one_of(
    st.lists(nasty_char, max_size=30).map("".join),
    st.sampled_from(EDGE_STRINGS),
    st.builds(lambda s, n: s * n, st.sampled_from(["a", "\x00", "й", "\ud800", "9"]),
              st.integers(100, 5000)),
)
huge_int = st.one_of(st.integers(), st.integers(min_value=-2**80, max_value=2**80),
                     st.sampled_from([0, -1, DB_INT_MAX, DB_INT_MAX + 1, -DB_INT_MAX - 2, 2**63,
                                      -2**63 - 1, 10**20, 10**400]))
calendar_edge = st.one_of(
    st.sampled_from(["0001-01-01", "9999-12-31", "9999-12-30", "2026-02-30", "2025-02-29",
                     "2024-02-29", "0000-00-00", "2026-13-01", "2026-00-10", "10000-01-01",
                     "-001-01-01", "2026-1-1", "2026-01-01T00:00", "1999-12-31", "2000-01-01",
                     "2100-12-31", "2101-01-01", "２０２６-０１-０１"]),
    st.dates().map(lambda d: d.isoformat()),
    hostile_text,
)
json_leaf = st.one_of(st.none(), st.booleans(), huge_int, st.floats(allow_nan=True), hostile_text)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(hostile_text, inner, max_size=3), max_leaves=10)
API_FIELDS = ["phone", "employee_id", "internal_number", "call_id", "megaplan_call_id"]
api_body = st.one_of(
    st.dictionaries(st.sampled_from(API_FIELDS), json_value, max_size=5),
    st.fixed_dictionaries({"phone": st.sampled_from(["79161234567", "+7 916 123-45-67"]) | hostile_text},
                          optional={"employee_id": hostile_text | huge_int,
                                    "internal_number": hostile_text | huge_int,
                                    "call_id": hostile_text | huge_int,
                                    "megaplan_call_id": hostile_text | huge_int}),
    json_value,
)


def deep_json(depth: int, kind: str) -> str:
    """JSON nested ``depth`` levels (fewer when that would pass the 1 MiB limit)."""
    depth = min(depth, (LIMIT - 32) // {"array": 2, "object": 6, "open": 1, "field": 2}[kind])
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    if kind == "open":  # never closed
        return "[" * depth
    return '{"call_id": ' + "[" * depth + '"x"' + "]" * depth + "}"


# -- encoding helpers -------------------------------------------------------------------------

def raw(value) -> bytes:
    """Text as bytes a client could send: lone surrogates become invalid UTF-8."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def pct(value) -> str:
    return quote(raw(value), safe="")


def form_body(data: dict) -> bytes:
    pairs = []
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append(f"{pct(key)}={pct(item)}")
    return "&".join(pairs).encode("ascii")


def post_raw_form(client, path: str, data: dict):
    return client.post(path, data=form_body(data), content_type="application/x-www-form-urlencoded")


def get_raw_query(client, path: str, query: dict):
    return client.get(path, query_string=form_body(query).decode("ascii"))


def json_bytes(body, mode: str) -> bytes:
    if mode == "ascii":  # lone surrogates as \ud800 escapes: valid JSON, bad text
        return json.dumps(body, ensure_ascii=True).encode()
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")  # invalid UTF-8


def not_500(response, *context):
    assert response.status_code < 500, (response.status_code, context, response.get_data()[:300])
    return response


form_value = st.one_of(hostile_text, huge_int.map(str), calendar_edge)
