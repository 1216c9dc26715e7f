"""JSON for addresses under the API prefix that match no endpoint, without taking the host's
404/405 pages: a catch-all route of the API blueprint, not an app-wide error handler."""
from __future__ import annotations

from flask import jsonify

from megaplan_plugin.web.telephony_api import bp

ENDPOINTS = ("call", "hangup")  # each /<account_key>/<endpoint>, POST only


@bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown_address(rest: str):
    parts = rest.split("/")
    if len(parts) == 2 and parts[1] in ENDPOINTS:  # a real endpoint asked with another method
        response = jsonify(error="method_not_allowed", message="Метод не поддерживается: используйте POST")
        response.status_code = 405
        response.headers["Allow"] = "POST"
        return response
    return jsonify(error="not_found", message="Нет такого адреса API"), 404
