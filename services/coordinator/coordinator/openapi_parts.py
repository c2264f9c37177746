"""Pieces the OpenAPI document's parts share: error responses, JSON bodies, common schemas."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}
"""The schema of an error response (RFC 9457 problem details)."""


def errors(*codes: int) -> dict[str, Any]:
    """Return the error responses of the given status codes."""
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
            "content": {"application/problem+json": {"schema": PROBLEM}},
        }
        for c in codes
    }


def response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """Return a JSON response of `schema`."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def body(schema: str) -> dict[str, Any]:
    """Return a required JSON request body of the named component schema."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


NULLABLE_STRING = {"type": ["string", "null"]}
"""A string or null."""
