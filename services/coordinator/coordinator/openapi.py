"""The OpenAPI 3.1 document of the coordinator's HTTP API (a test checks it against ROUTES)."""

from __future__ import annotations

from typing import Any

from coordinator.openapi_dead_letters import DEAD_LETTER_SCHEMAS, dead_letter_paths
from coordinator.openapi_parts import errors, response

_SAGA_ID = {
    "name": "saga_id",
    "in": "path",
    "required": True,
    "description": "The saga id, percent-encoded: a `/` in it is sent as `%2F`",
    "schema": {"type": "string", "maxLength": 128},
}
_TIME = {"type": "string", "format": "date-time"}
_LIST_PARAMETERS = [
    ("status", {"type": "string"}, "Comma list of statuses: any of them"),
    ("saga_type", {"type": "string"}, "One saga type"),
    ("stuck", {"type": "boolean"}, "true: only stuck sagas; false: only those not stuck"),
    ("resource", {"type": "string"}, "A resource the saga locks, e.g. ns:ns-web-1"),
    ("error_code", {"type": "string"}, "The code of the saga's error"),
    ("started_after", _TIME, "Created at or after (RFC 3339 with a timezone)"),
    ("started_before", _TIME, "Created before (RFC 3339 with a timezone)"),
    ("since", _TIME, "Alias of started_after"),
    ("until", _TIME, "Alias of started_before"),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size"),
    ("cursor", {"type": "string"}, "The next_cursor of the previous page (opaque)"),
]
_INPUT_FIELD = {
    "name": "input",
    "in": "query",
    "description": "input.<field>=<value> (dotted paths reach nested fields; any number of "
    "them): the input's field, as text, equals the value",
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    "style": "deepObject",
}
_REASON = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reason"}}},
}
_ACCEPTED = response({"$ref": "#/components/schemas/Accepted"}, "Accepted")


def document() -> dict[str, Any]:
    """Return the OpenAPI document."""
    verb = {
        "parameters": [_SAGA_ID],
        "requestBody": _REASON,
        "responses": {"202": _ACCEPTED, **errors(400, 401, 403, 404, 409, 413, 422)},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Convection coordinator",
            "version": "1",
            "description": "Start, inspect and repair sagas.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "StartSaga": {
                    "type": "object",
                    "required": ["saga_type"],
                    "additionalProperties": False,
                    "properties": {
                        "saga_type": {"type": "string"},
                        "input": {"type": "object"},
                        "saga_id": {"type": "string"},
                    },
                },
                "Reason": {
                    "type": "object",
                    "required": ["reason"],
                    "additionalProperties": False,
                    "properties": {"reason": {"type": "string", "minLength": 1}},
                },
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "saga_id": {"type": "string"},
                        "status": {"type": "string"},
                        "verdict": {"type": "string"},
                    },
                },
                "SagaSummary": {
                    "type": "object",
                    "properties": {
                        "saga_id": {"type": "string"},
                        "saga_type": {"type": "string"},
                        "status": {"type": "string"},
                        "version": {"type": "integer"},
                        "parked": {"type": ["string", "null"]},
                        "current_step": {"type": ["string", "null"]},
                        "trace_id": {"type": ["string", "null"]},
                        "created_at": _TIME,
                        "updated_at": _TIME,
                        "error": {"type": ["object", "null"]},
                        "resources": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "Saga": {
                    "type": "object",
                    "properties": {
                        "saga_id": {"type": "string"},
                        "status": {"type": "string"},
                        "trace_id": {"type": ["string", "null"]},
                        "waiting": {"type": ["object", "null"]},
                        "steps": {"type": "array", "items": {"type": "object"}},
                        "history": {"type": "array", "items": {"type": "object"}},
                    },
                },
                **DEAD_LETTER_SCHEMAS,
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/sagas": {
                "post": {
                    "summary": "Start a saga",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/StartSaga"}
                            }
                        },
                    },
                    "responses": {"202": _ACCEPTED, **errors(400, 401, 403, 409, 413, 422)},
                },
                "get": {
                    "summary": "List sagas, newest first; an unknown parameter or a bad value is "
                    "a 400 naming it",
                    "parameters": [
                        *(
                            {"name": n, "in": "query", "schema": schema, "description": text}
                            for n, schema, text in _LIST_PARAMETERS
                        ),
                        _INPUT_FIELD,
                    ],
                    "responses": {
                        "200": response(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/SagaSummary"},
                                    },
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                            "A page of sagas",
                        ),
                        **errors(400, 401),
                    },
                },
            },
            "/sagas/{saga_id}": {
                "get": {
                    "summary": "One saga: steps, history, trace id, lock position",
                    "parameters": [_SAGA_ID],
                    "responses": {
                        "200": response({"$ref": "#/components/schemas/Saga"}, "The saga"),
                        **errors(400, 401, 404),
                    },
                }
            },
            "/sagas/{saga_id}/cancel": {"post": {"summary": "Cancel (compensate)", **verb}},
            "/sagas/{saga_id}/retry": {"post": {"summary": "Resume a failed saga", **verb}},
            "/sagas/{saga_id}/abandon": {
                "post": {"summary": "Give a saga up for good, compensating nothing more", **verb}
            },
            "/sagas/{saga_id}/steps/{step}/skip": {
                "post": {
                    "summary": "Mark a failed compensation done by hand",
                    **verb,
                    "parameters": [
                        _SAGA_ID,
                        {
                            "name": "step",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                }
            },
            "/stats": {
                "get": {
                    "summary": "Per saga type and step, in the saga's order: counts by outcome, "
                    "success_rate (completed), failure_rate (other endings but cancelled), "
                    "cancelled_rate, mean and p95 durations",
                    "parameters": [
                        {"name": "window", "in": "query", "schema": {"type": "integer"}}
                    ],
                    "responses": {
                        "200": response({"type": "object"}, "Statistics"),
                        **errors(400, 401),
                    },
                }
            },
            "/saga-types": {
                "get": {
                    "summary": "The saga types this coordinator runs: versions, steps, locks, "
                    "input JSON Schema",
                    "responses": {
                        "200": response({"type": "object"}, "Saga types"),
                        **errors(401),
                    },
                }
            },
            **dead_letter_paths(),
            "/livez": {
                "get": {
                    "summary": "Alive",
                    "security": [],
                    "responses": {"200": response({"type": "object"}, "Alive")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Database, broker and schema ready",
                    "security": [],
                    "responses": {
                        "200": response({"type": "object"}, "Ready"),
                        "503": response({"type": "object"}, "Not ready"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {"200": {"description": "Prometheus text"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": response({"type": "object"}, "OpenAPI")},
                }
            },
        },
    }
