"""The OpenAPI 3.1 document of the coordinator's HTTP API (a test checks it against ROUTES)."""

from __future__ import annotations

from typing import Any

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request (not JSON, bad query)",
        401: "Missing or unknown token",
        403: "The token's role may not do this",
        404: "No such saga, step or dead letter (or not a saga id)",
        409: "Not possible now (the saga's current state; a dead letter replayed already)",
        413: "Body too large",
        422: "The body or input does not validate",
        503: "Not ready (or the broker failed)",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
        for c in codes
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
_ACCEPTED = _json({"$ref": "#/components/schemas/Accepted"}, "Accepted")
_DEAD_LETTER_ID = {
    "name": "dead_letter_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
}
_NULLABLE_STRING = {"type": ["string", "null"]}


def _body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


DEAD_LETTER_SCHEMAS: dict[str, Any] = {
    "DeadLetter": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "queue": {"type": "string", "description": "the queue it died in"},
            "reason": {"type": "string"},
            "error": _NULLABLE_STRING,
            "message_id": _NULLABLE_STRING,
            "message_type": _NULLABLE_STRING,
            "saga_id": _NULLABLE_STRING,
            "dead_at": {"type": "string", "format": "date-time"},
            "collected_at": {"type": "string", "format": "date-time"},
            "replayed_at": _NULLABLE_STRING,
            "replay_message_id": _NULLABLE_STRING,
            "size": {"type": "integer", "description": "bytes of the body"},
        },
    },
    "DeadLetterDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/DeadLetter"},
            {
                "type": "object",
                "properties": {
                    "headers": {"type": "object"},
                    "body": {"type": "string", "description": "when the body is UTF-8"},
                    "body_base64": {"type": "string", "description": "when it is not"},
                    "content_type": _NULLABLE_STRING,
                    "replayed_by": _NULLABLE_STRING,
                    "replay_reason": _NULLABLE_STRING,
                },
            },
        ]
    },
    "Replay": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {
            "reason": {"type": "string", "minLength": 1},
            "again": {"type": "boolean", "description": "replay one replayed before"},
        },
    },
    "Purge": {
        "type": "object",
        "additionalProperties": False,
        "description": "at least one selector; every given one must match",
        "properties": {
            "ids": {"type": "array", "items": {"type": "integer"}},
            "queue": {"type": "string"},
            "reason": {"type": "string"},
            "replayed": {"type": "boolean"},
        },
    },
}
"""The schemas of the dead-letter routes."""


def dead_letter_paths() -> dict[str, Any]:
    """Return the paths of the dead-letter routes."""
    page = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}},
            "next_cursor": _NULLABLE_STRING,
        },
    }
    replayed = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "replay_message_id": {"type": "string"}},
    }
    query = ("queue", "reason", "saga_id", "replayed", "limit", "cursor")
    return {
        "/dead-letters": {
            "get": {
                "summary": "List dead letters, newest first (unknown parameters: 400)",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}} for n in query
                ],
                "responses": {"200": _json(page, "A page of dead letters"), **_errors(400, 401)},
            }
        },
        "/dead-letters/purge": {
            "post": {
                "summary": "Delete the dead letters the selectors match",
                "requestBody": _body("Purge"),
                "responses": {
                    "200": _json({"type": "object"}, "How many were purged"),
                    **_errors(400, 401, 403, 413, 422),
                },
            }
        },
        "/dead-letters/{dead_letter_id}": {
            "get": {
                "summary": "One dead letter with its headers and body",
                "parameters": [_DEAD_LETTER_ID],
                "responses": {
                    "200": _json(
                        {"$ref": "#/components/schemas/DeadLetterDetail"}, "The dead letter"
                    ),
                    **_errors(401, 404),
                },
            }
        },
        "/dead-letters/{dead_letter_id}/replay": {
            "post": {
                "summary": "Publish it again to the queue it died in, with a new message id",
                "parameters": [_DEAD_LETTER_ID],
                "requestBody": _body("Replay"),
                "responses": {
                    "202": _json(replayed, "Replayed"),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            }
        },
    }


def document() -> dict[str, Any]:
    """Return the OpenAPI document."""
    verb = {
        "parameters": [_SAGA_ID],
        "requestBody": _REASON,
        "responses": {"202": _ACCEPTED, **_errors(400, 401, 403, 404, 409, 413, 422)},
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
                    "responses": {"202": _ACCEPTED, **_errors(400, 401, 403, 409, 413, 422)},
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
                        "200": _json(
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
                        **_errors(400, 401),
                    },
                },
            },
            "/sagas/{saga_id}": {
                "get": {
                    "summary": "One saga: steps, history, trace id, lock position",
                    "parameters": [_SAGA_ID],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Saga"}, "The saga"),
                        **_errors(400, 401, 404),
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
                        "200": _json({"type": "object"}, "Statistics"),
                        **_errors(400, 401),
                    },
                }
            },
            "/saga-types": {
                "get": {
                    "summary": "The saga types this coordinator runs: versions, steps, locks, "
                    "input JSON Schema",
                    "responses": {
                        "200": _json({"type": "object"}, "Saga types"),
                        **_errors(401),
                    },
                }
            },
            **dead_letter_paths(),
            "/livez": {
                "get": {
                    "summary": "Alive",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "Alive")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Database, broker and schema ready",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}, "Ready"),
                        "503": _json({"type": "object"}, "Not ready"),
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
                    "responses": {"200": _json({"type": "object"}, "OpenAPI")},
                }
            },
        },
    }
