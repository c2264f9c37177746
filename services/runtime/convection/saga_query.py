r"""Saga filters on the command line: `convection list`'s options and the `--query` text.

Both become the query parameters of `GET /sagas`, which checks every value (a bad one is a
400 naming it, which the CLI turns into exit 2).

`--query` syntax, for `convection cancel|retry|abandon --query ...`::

    KEY=VALUE[,KEY=VALUE...]

    status=S          a status; more after commas: status=failed,compensation_failed
    type=T            the saga type (also saga_type=T)
    stuck=true|false
    resource=R        a resource the saga locks, e.g. resource=ns:ns-web-1
    input.F=V         a field of the input, as text; F may be a dotted path (input.a.b=V)
    error-code=C      the code of the saga's error (also error_code=C)
    started-after=T   created at or after T, RFC 3339 with a timezone (also since=T)
    started-before=T  created before T (also until=T)

A piece without `=` continues the value before it (so `status=failed,compensated` is one
filter, and so is `input.note=a,b`). Wrap a value in double quotes to hold a comma followed
by an `=`: `input.note="x,y=z"`. Spaces around pieces are ignored. A key may appear once
(`input.F` once per field). Example::

    convection cancel --reason "VIM retired" \
        --query "status=running,pending,type=ns.instantiate,input.vim_account_id=vim-1"
"""

from __future__ import annotations

from collections.abc import Iterable

KEYS = {
    "status": "status",
    "type": "saga_type",
    "saga_type": "saga_type",
    "stuck": "stuck",
    "resource": "resource",
    "error-code": "error_code",
    "error_code": "error_code",
    "started-after": "started_after",
    "started_after": "started_after",
    "since": "started_after",
    "started-before": "started_before",
    "started_before": "started_before",
    "until": "started_before",
}
"""A filter's name on the command line (either spelling) -> its API query parameter."""


_KNOWN = (
    "status, type, stuck, resource, input.FIELD, error-code, started-after, started-before "
    "(or since, until)"
)


class BadFilter(ValueError):
    """A filter is unknown or malformed; the message names it first."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def filters(
    *,
    status: str | None = None,
    saga_type: str | None = None,
    stuck: bool | None = None,
    resource: str | None = None,
    inputs: Iterable[str] = (),
    error_code: str | None = None,
    started_after: str | None = None,
    started_before: str | None = None,
) -> dict[str, str]:
    """Return the API query parameters of `convection list`'s filter options."""
    params: dict[str, str] = {}
    for name, value in (
        ("status", status),
        ("saga_type", saga_type),
        ("resource", resource),
        ("error_code", error_code),
        ("started_after", started_after),
        ("started_before", started_before),
    ):
        if value:
            params[name] = value
    if stuck is not None:
        params["stuck"] = "true" if stuck else "false"
    for item in inputs:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise BadFilter("--input", f"{item!r} is not FIELD=VALUE (e.g. vim_account_id=vim-1)")
        _add(params, "input." + field.removeprefix("input."), value, "--input " + field)
    return params


def parse_query(text: str) -> dict[str, str]:
    """Return the API query parameters of a `--query` text (syntax in the module's doc)."""
    params: dict[str, str] = {}
    last: str | None = None
    for piece, quoted in _pieces(text):
        key, sep, value = piece.partition("=")
        if quoted or not sep:
            if last is None:
                raise BadFilter(piece or "--query", "expected KEY=VALUE first")
            params[last] += "," + _unquote(piece)
            continue
        key = key.strip()
        value = _unquote(value.strip())
        if key.startswith("input."):
            name = key
        elif key in KEYS:
            name = KEYS[key]
        else:
            raise BadFilter(key or "--query", f"unknown filter; known: {_KNOWN}")
        _add(params, name, value, key)
        last = name
    if not params:
        raise BadFilter("--query", "no filter given (e.g. status=failed,type=ns.instantiate)")
    return params


def _add(params: dict[str, str], name: str, value: str, shown: str) -> None:
    if name in params:
        raise BadFilter(shown, "given twice (or with another spelling)")
    params[name] = value


def _pieces(text: str) -> list[tuple[str, bool]]:
    """Split on commas outside double quotes; tell which pieces were one quoted value."""
    pieces: list[tuple[str, bool]] = []
    current, quoting = "", False
    for char in text:
        if char == '"':
            quoting = not quoting
            current += char
        elif char == "," and not quoting:
            pieces.append((current.strip(), _is_quoted(current)))
            current = ""
        else:
            current += char
    if quoting:
        raise BadFilter("--query", "a double quote is not closed")
    pieces.append((current.strip(), _is_quoted(current)))
    return [(p, q) for p, q in pieces if p]


def _is_quoted(piece: str) -> bool:
    stripped = piece.strip()
    return len(stripped) >= 2 and stripped[0] == stripped[-1] == '"'


def _unquote(value: str) -> str:
    return value[1:-1] if _is_quoted(value) else value
