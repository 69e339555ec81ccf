"""The collector's OpenAPI 3.0 description, served open at `GET /openapi.json`.

Reads the event contract's names (`tailor.events.schema`) and the settings' batch limits;
writes nothing. It describes what a client may send and what it gets back, so that tools
(and the schemathesis run in `tests/unit/events/test_collector_openapi.py`) can generate
requests from it; the routes' own checks stay the authority.
"""

from __future__ import annotations

from typing import Any

from tailor.events.collector.segment_routes import segment_openapi_paths
from tailor.events.schema import EVENT_TYPES, MAX_STRING_LENGTH

_TEXT = {"type": "string", "maxLength": MAX_STRING_LENGTH}
_ERROR = {"description": "refused; the reason names the problem",
          "content": {"application/json": {"schema": {
              "type": "object", "properties": {"error": {"type": "string"}},
              "required": ["error"]}}}}
_KEY_REFUSALS = {"401": {**_ERROR, "description": "no key"},
                 "403": {**_ERROR, "description": "unknown, revoked, expired or wrong-scope key"},
                 "429": {**_ERROR, "description": "over the key's rate limit (Retry-After)"}}


def _event_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["customer_id", "event_type", "timestamp"],
        "properties": {
            "event_id": _TEXT, "customer_id": _TEXT, "product_id": _TEXT,
            "session_id": _TEXT, "order_id": _TEXT, "device_type": _TEXT, "query": _TEXT,
            "event_type": {"type": "string", "enum": list(EVENT_TYPES)},
            "timestamp": {"oneOf": [{"type": "string", "format": "date-time"},
                                    {"type": "number"}]},
            "price": {"type": "number", "minimum": 0},
            "quantity": {"type": "integer", "minimum": 1},
            "properties": {"type": "object"},
        },
    }


def _opt_out_paths(key_header: list[dict[str, Any]]) -> dict[str, Any]:
    """The admin and the browser opt-out / opt-in routes (`tailor.events.collector.opt_outs`)."""
    change = {"type": "object", "properties": {
        "customer_id": {"type": "string"}, "action": {"type": "string"},
        "status": {"type": "string", "enum": ["opted_out", "opted_in", "deleted"]},
        "changed": {"type": "boolean"}}}
    customer = [{"name": "customer_id", "in": "path", "required": True, "schema": _TEXT}]
    ids = {"type": "object", "properties": {
        "anonymous_id": _TEXT, "customer_id": _TEXT,
        "identity_signature": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}}}
    answer = {"type": "object", "properties": {
        "changes": {"type": "array", "items": change},
        "refused": {"type": "array", "items": {"type": "object"}}}}
    paths: dict[str, Any] = {}
    for action in ("opt-out", "opt-in"):
        paths[f"/v1/customers/{{customer_id}}/{action}"] = {"post": {
            "summary": f"{action} one customer (admin).", "security": [{"key": []}],
            "parameters": key_header + customer,
            "responses": {"200": {"description": "the customer's state after",
                                  "content": {"application/json": {"schema": change}}},
                          "400": _ERROR, **_KEY_REFUSALS, "503": _ERROR}}}
        paths[f"/v1/{action}"] = {"post": {
            "summary": f"{action} the calling browser's own ids (events:write key; a "
                       "customer id needs its identity signature, see docs/collector.md).",
            "security": [{"key": []}], "parameters": key_header,
            "requestBody": {"required": True, "content": {"application/json": {"schema": ids}}},
            "responses": {"200": {"description": "the ids changed and the ids refused",
                                  "content": {"application/json": {"schema": answer}}},
                          "400": _ERROR, "413": _ERROR, "415": _ERROR, **_KEY_REFUSALS,
                          "503": _ERROR}}}
    return paths


def _batch_result_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["accepted", "duplicates", "rejected"],
            "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
                           "rejected": {"type": "array", "items": {"type": "object"}},
                           "forgotten": {"type": "integer", "description":
                                         "events of forgotten customers, not stored (only "
                                         "when some were)"},
                           "opted_out": {"type": "integer", "description":
                                         "events of opted-out ids, not stored (only when "
                                         "some were)"}}}


def collector_openapi(max_batch_events: int) -> dict[str, Any]:
    """The OpenAPI document of the collector's routes (paths as the standalone collector
    serves them; under `tailor serve` they sit below `/collect`)."""
    batch = {"type": "object", "required": ["events"],
             "properties": {"sent_at": {"type": "string", "format": "date-time"},
                            "events": {"type": "array", "items": _event_schema(),
                                       "maxItems": max_batch_events}}}
    key_header = [{"name": "X-Tailor-Key", "in": "header", "required": False,
                   "schema": {"type": "string"}}]
    token = [{"name": "token", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"}}]
    plain = {"200": {"description": "ok"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Tailor event collector", "version": "1"},
        "components": {"securitySchemes": {
            "key": {"type": "apiKey", "in": "header", "name": "X-Tailor-Key"},
            "basic": {"type": "http", "scheme": "basic"}}},  # Segment's write key
        "paths": {
            "/v1/events": {"post": {
                "summary": "Store a batch of events (events:write).",
                "security": [{"key": []}], "parameters": key_header,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": batch}}},
                "responses": {"200": {"description": "stored, duplicates and rejections",
                                      "content": {"application/json": {
                                          "schema": _batch_result_schema()}}},
                              "400": _ERROR, "413": _ERROR, "415": _ERROR, **_KEY_REFUSALS,
                              "503": _ERROR}}},
            "/healthz": {"get": {"summary": "Ready: the event store takes writes.",
                                 "responses": {**plain, "503": _ERROR}}},
            "/readyz": {"get": {"summary": "Same as /healthz.",
                                "responses": {**plain, "503": _ERROR}}},
            "/livez": {"get": {"summary": "The process answers.", "responses": plain}},
            "/metrics": {"get": {"summary": "Prometheus text (recommendations:read or admin).",
                                 "security": [{"key": []}], "parameters": key_header,
                                 "responses": {**plain, **_KEY_REFUSALS}}},
            "/tailor.js": {"get": {"summary": "The JavaScript tracker.", "responses": plain}},
            "/v1/customers/{customer_id}": {"delete": {
                "summary": "Forget a customer everywhere (admin): the tombstone at once, the "
                           "stores by a job (`tailor forget`).",
                "security": [{"key": []}],
                "parameters": key_header + [{"name": "customer_id", "in": "path",
                                             "required": True, "schema": _TEXT}],
                "responses": {"202": {"description": "tombstoned; the job runs",
                                      "content": {"application/json": {"schema": {
                                          "type": "object",
                                          "required": ["status", "tombstone"],
                                          "properties": {"status": {"type": "string"},
                                                         "tombstone": {"type": "string"}}}}}},
                              "400": _ERROR, **_KEY_REFUSALS}}},
            "/v1/forget-jobs/{tombstone}": {"get": {
                "summary": "What became of a forget (admin): running, stopped or done.",
                "security": [{"key": []}],
                "parameters": key_header + [{"name": "tombstone", "in": "path",
                                             "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the job's status",
                                      "content": {"application/json": {"schema": {
                                          "type": "object", "required": ["status", "tombstone"],
                                          "properties": {
                                              "status": {"type": "string", "enum": [
                                                  "running", "stopped", "done"]},
                                              "tombstone": {"type": "string"},
                                              "steps_done": {"type": "array",
                                                             "items": {"type": "string"}}}}}}},
                              "404": _ERROR, **_KEY_REFUSALS}}},
            "/t/o/{token}.gif": {"get": {"summary": "A campaign mail's open pixel.",
                                         "parameters": token,
                                         "responses": {**plain, "404": _ERROR}}},
            "/t/c/{token}": {"get": {
                "summary": "A campaign mail's click: 302 to a link stored with the mail.",
                "parameters": token + [{"name": "u", "in": "query", "required": False,
                                        "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"302": {"description": "to the stored link"}, "404": _ERROR}}},
            **_opt_out_paths(key_header),
            **segment_openapi_paths(_ERROR, _KEY_REFUSALS),
        },
    }
