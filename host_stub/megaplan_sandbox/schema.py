"""Megaplan API v3 as its own schema describes it: what a request may carry.

``megaplan_v3_types.json`` beside this file condenses Megaplan's published RAML 1.0
description of API v3 (version r2510.27309.181) for every type and route the plugin touches;
its ``resolution_rules`` say how the RAML was read, and this module applies them:

- a body or JSON-in-query value of a type may carry only that type's properties, each of its
  JSON type and within its enum;
- every object carries ``contentType`` (the discriminator of unions); a union or a link takes
  only its member types; wherever an entity is expected, a bare ``{contentType, id}`` link will do;
- a create (``creates``) needs the type's required properties (value objects such as
  ``DateTime`` always need theirs), except what the path already names (``subject_from_path``);
- ``fields`` may ask a list only for properties its type has, ``sortBy`` only for sortable ones;
- path parameters declared ``integer`` are digits.

The sandbox refuses a request that breaks any of these with 422 (Megaplan's answer to a request
it cannot read); ``python -m host_stub.megaplan_sandbox.schema CAPTURE`` checks a capture of
the plugin's requests (``MEGAPLAN_CAPTURE_FILE``) taken in front of any account.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TYPES_FILE = Path(__file__).with_name("megaplan_v3_types.json")
PRIMITIVE = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


@dataclass(frozen=True)
class Violation:
    field: str      # where in the request, e.g. "body.participants[0].subject"
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _parse(expr: str) -> tuple[bool, tuple[str, ...]]:
    """'(A|B)[]' -> (True, ('A', 'B')); 'A|B' -> (False, ('A', 'B'))."""
    expr = expr.strip().strip("'\"")
    many = expr.endswith("[]")
    if many:
        expr = expr[:-2]
    if expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1]
    return many, tuple(member.strip() for member in expr.split("|"))


class Schema:
    def __init__(self, data: dict):
        self.types: dict = data["types"]
        self.opaque: dict = data["opaque_types"]
        self.list_query: dict = data["common_list_query"]
        self.routes = []
        for template, methods in data["resources"].items():
            path = template.removeprefix("/api/v3")
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
            self.routes.append((re.compile(f"^{pattern}$"), methods))

    # -- values -------------------------------------------------------------------------------
    def check(self, expr: str, value, where: str, *, create: bool = False) -> list[Violation]:
        many, members = _parse(expr)
        if many:
            if not isinstance(value, list):
                return [Violation(where, f"must be a list of {expr[:-2]}")]
            found = []
            for i, item in enumerate(value):
                found += self._one(members, item, f"{where}[{i}]", create)
            return found
        return self._one(members, value, where, create)

    def _one(self, members: tuple[str, ...], value, where: str, create: bool) -> list[Violation]:
        if "any" in members or value is None:
            return []
        wanted = "|".join(members)
        if not isinstance(value, dict):
            for member in members:
                kinds = PRIMITIVE.get(member)
                if kinds and isinstance(value, kinds) and not (isinstance(value, bool) and member != "boolean"):
                    return []
                if member not in PRIMITIVE and member not in self.types and not self._opaque_object(member):
                    return []  # a type this file does not describe: nothing to hold it to
            return [Violation(where, f"{json.dumps(value, ensure_ascii=False)[:40]} is not assignable to {wanted}")]
        content_type = value.get("contentType")
        if not isinstance(content_type, str):
            return [Violation(f"{where}.contentType", f"missing: every object names its type ({wanted})")]
        if content_type not in members and not ({"BaseEntity", "BaseValue"} & set(members)):
            return [Violation(f"{where}.contentType", f"{content_type} is not assignable to {wanted}")]
        spec = self.types.get(content_type)
        if spec is None:
            return []  # an opaque type: its contentType is all this file knows of it
        if set(value) <= {"contentType", "id"} and "id" in value and spec.get("base") == "BaseEntity":
            return []  # a link
        return self._object(content_type, spec, value, where, create)

    def _opaque_object(self, name: str) -> bool:
        return self.opaque.get(name) in ("BaseEntity", "BaseValue")

    def _object(self, name: str, spec: dict, value: dict, where: str, create: bool,
                skip_required=()) -> list[Violation]:
        found = []
        properties = spec["properties"]
        for key, item in value.items():
            prop = properties.get(key)
            if prop is None:
                found.append(Violation(f"{where}.{key}", f"{name} has no property {key!r}"))
                continue
            if key in ("id", "contentType"):
                continue
            found += self.check(prop["type"], item, f"{where}.{key}", create=create)
            if "enum" in prop and item is not None:
                values = item if isinstance(item, list) else [item]
                found += [Violation(f"{where}.{key}", f"{v!r} is not one of {', '.join(prop['enum'])}")
                          for v in values if v not in prop["enum"]]
        if create or spec.get("base") == "BaseValue":
            found += [Violation(f"{where}.{key}", f"required by {name}")
                      for key, prop in properties.items()
                      if prop.get("required") and key not in value and key not in skip_required]
        return found

    # -- requests -----------------------------------------------------------------------------
    def check_request(self, method: str, path: str, query: dict | None, body) -> list[Violation]:
        """Violations of one request to ``/api/v3``; a route this file does not describe has none."""
        path = path.removeprefix("/api/v3")
        for pattern, methods in self.routes:
            match = pattern.match(path)
            if match and method.lower() in methods:
                return self._request(methods, methods[method.lower()], match.groupdict(), query or {}, body)
        return []

    def _request(self, resource: dict, spec: dict, path_args: dict, query: dict, body) -> list[Violation]:
        found = [Violation(f"path.{name}", f"{path_args[name]!r} is not an integer")
                 for name, kind in resource.get("path", {}).items()
                 if kind == "integer" and name in path_args and not path_args[name].isdigit()]
        if "query" in spec:
            found += self._query(spec, query)
        if "body" in spec:
            found += self._body(spec, body)
        return found

    def _query(self, spec: dict, query: dict) -> list[Violation]:
        allowed = {k: v for k, v in spec["query"].items() if k != "@list"}
        if spec["query"].get("@list"):
            allowed.update(self.list_query)
        found = [Violation(f"query.{k}", "required") for k, v in allowed.items()
                 if v.get("required") and k not in query]
        for key, value in query.items():
            if key not in allowed:
                found.append(Violation(f"query.{key}", "no such parameter"))
            elif key != "fields":
                found += self.check(allowed[key]["type"], value, f"query.{key}")
        element = spec.get("own_type") or spec.get("fields_checked_against") or spec.get("response", "")
        _, members = _parse(element)
        described = [self.types[m]["properties"] for m in members if m in self.types]
        if not described:
            return found
        for i, field in enumerate(query.get("fields") or []):
            name = field if isinstance(field, str) else next(iter(field), None) if isinstance(field, dict) else None
            if name is not None and not any(name in props for props in described):
                found.append(Violation(f"query.fields[{i}]", f"{'|'.join(members)} has no field {name!r}"))
        for i, sort in enumerate(query.get("sortBy") or []):
            name = sort.get("fieldName") if isinstance(sort, dict) else None
            if not any(props.get(name, {}).get("sortable") for props in described):
                found.append(Violation(f"query.sortBy[{i}].fieldName", f"{name!r} is not sortable"))
        return found

    def _body(self, spec: dict, body) -> list[Violation]:
        create = bool(spec.get("creates"))
        many, members = _parse(spec["body"])
        if spec.get("subject_from_path") and isinstance(body, dict) and body.get("contentType") in self.types:
            name = body["contentType"]
            if name not in members:
                return [Violation("body.contentType", f"{name} is not assignable to {spec['body']}")]
            return self._object(name, self.types[name], body, "body", create, skip_required=("subject",))
        found = self.check(spec["body"], body, "body", create=create)
        for key in spec.get("body_requires", ()):
            if not isinstance(body, dict) or key not in body:
                found.append(Violation(f"body.{key}", "required"))
        return found


@lru_cache(maxsize=1)
def schema() -> Schema:
    return Schema(json.loads(TYPES_FILE.read_text(encoding="utf-8")))


def check_capture(lines) -> list[tuple[int, str, str, Violation]]:
    """Check a capture: one JSON object per line, ``{"method", "path", "query", "body"}``."""
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        request = json.loads(line)
        for violation in schema().check_request(request["method"], request["path"],
                                                request.get("query"), request.get("body")):
            found.append((number, request["method"], request["path"], violation))
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m host_stub.megaplan_sandbox.schema CAPTURE.jsonl", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        found = check_capture(fh)
    for number, method, path, violation in found:
        print(f"line {number}: {method} {path}: {violation}")
    print(f"{len(found)} violation(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
