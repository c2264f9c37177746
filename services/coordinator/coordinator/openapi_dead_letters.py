"""The dead-letter routes' part of the OpenAPI document: their schemas and paths."""

from __future__ import annotations

from typing import Any

from coordinator.openapi_parts import NULLABLE_STRING, body, errors, response

DEAD_LETTER_ID = {
    "name": "dead_letter_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
}


DEAD_LETTER_SCHEMAS: dict[str, Any] = {
    "DeadLetter": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "queue": {"type": "string", "description": "the queue it died in"},
            "reason": {"type": "string"},
            "error": NULLABLE_STRING,
            "message_id": NULLABLE_STRING,
            "message_type": NULLABLE_STRING,
            "saga_id": NULLABLE_STRING,
            "dead_at": {"type": "string", "format": "date-time"},
            "collected_at": {"type": "string", "format": "date-time"},
            "replayed_at": NULLABLE_STRING,
            "replay_message_id": NULLABLE_STRING,
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
                    "content_type": NULLABLE_STRING,
                    "replayed_by": NULLABLE_STRING,
                    "replay_reason": NULLABLE_STRING,
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
            "next_cursor": NULLABLE_STRING,
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
                "responses": {"200": response(page, "A page of dead letters"), **errors(400, 401)},
            }
        },
        "/dead-letters/purge": {
            "post": {
                "summary": "Delete the dead letters the selectors match",
                "requestBody": body("Purge"),
                "responses": {
                    "200": response({"type": "object"}, "How many were purged"),
                    **errors(400, 401, 403, 413, 422),
                },
            }
        },
        "/dead-letters/{dead_letter_id}": {
            "get": {
                "summary": "One dead letter with its headers and body",
                "parameters": [DEAD_LETTER_ID],
                "responses": {
                    "200": response(
                        {"$ref": "#/components/schemas/DeadLetterDetail"}, "The dead letter"
                    ),
                    **errors(401, 404),
                },
            }
        },
        "/dead-letters/{dead_letter_id}/replay": {
            "post": {
                "summary": "Publish it again to the queue it died in, with a new message id",
                "parameters": [DEAD_LETTER_ID],
                "requestBody": body("Replay"),
                "responses": {
                    "202": response(replayed, "Replayed"),
                    **errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            }
        },
    }
