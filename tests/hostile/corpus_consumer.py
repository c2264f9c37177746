"""Hostile cases that decode and are refused by a running system: by the consumer of the queue
they arrive on, or by `POST /sagas` (see `tests.hostile.corpus`)."""

from __future__ import annotations

from typing import Any

from contracts import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    CancelSaga,
    Command,
    ErrorInfo,
    Reply,
    SagaEvent,
    SagaStatus,
    StartSaga,
    WakeSaga,
    encode,
    utc_now,
)
from tests.hostile.corpus_base import (
    API,
    COMMANDS,
    DUPLICATE,
    INTRUDER,
    REPLIES,
    SAGAS,
    UNKNOWN_SAGA_TYPE,
    Hostile,
    _dump,
    _fresh,
    _nested,
    _pad,
    _Real,
    _start,
)
from tests.unit.world import OSM_CATALOGUE

# -- decoded, then refused by the consumer ----------------------------------------------------


def _consumer_level(real: _Real) -> list[Hostile]:
    sagas, replies, commands = frozenset({SAGAS}), frozenset({REPLIES}), frozenset({COMMANDS})

    def h(
        name: str,
        value: Any,
        expect: str,
        targets: frozenset[str],
        note: str,
        **extra: Any,
    ) -> Hostile:
        body = value if isinstance(value, bytes) else encode(value)
        return Hostile(name=name, body=body, expect=expect, targets=targets, note=note, **extra)

    def reply(saga_id: str = real.saga_id, step: str = real.step, **fields: Any) -> Reply:
        fields.setdefault("outcome", "succeeded")
        fields.setdefault("result", {})
        return Reply(command_id=real.command_id, saga_id=saga_id, step=step, attempt=1, **fields)

    def command(service: str = real.service, action: str | None = None) -> Command:
        return Command(
            saga_id=real.saga_id,
            saga_type=real.saga_type,
            step=real.step,
            attempt=1,
            idempotency_key=f"{real.saga_id}/{real.step}",
            service=service,
            action=action or OSM_CATALOGUE.for_service(service)[0].ACTION,
            payload={},
        )

    def unknown_type(**changes: Any) -> bytes:
        return _dump(_start(**changes))

    other_service = "lcm" if real.service != "lcm" else "vim"
    replayed = reply()
    return [
        h(
            "at-limit-start",
            _pad(unknown_type(), MAX_MESSAGE_BYTES),
            "unknown_saga_type",
            sagas,
            "exactly MAX_MESSAGE_BYTES: accepted by decode",
        ),
        h(
            "at-limit-reply",
            _pad(encode(reply(saga_id=_fresh())), MAX_MESSAGE_BYTES),
            "unknown_saga",
            replies,
            "exactly MAX_MESSAGE_BYTES: accepted by decode",
        ),
        h(
            "at-limit-command",
            _pad(encode(command(action=f"{real.service}.launch-missiles")), MAX_MESSAGE_BYTES),
            "unknown_action",
            commands,
            "exactly MAX_MESSAGE_BYTES: accepted by decode",
        ),
        h(
            "at-depth-limit",
            unknown_type(input={"n": _nested(MAX_JSON_DEPTH - 2)}),
            "unknown_saga_type",
            sagas,
            "nests exactly MAX_JSON_DEPTH levels: accepted",
        ),
        h(
            "brackets-in-strings",
            unknown_type(input={"s": "[" * 10_000, "t": "{" * 10_000}),
            "unknown_saga_type",
            sagas,
            "brackets inside strings do not count towards the depth",
        ),
        h(
            "escaped-quotes-and-brackets",
            unknown_type(input={"s": '\\"' + "[" * 1000 + '\\\\"' + '"[' * 1000}),
            "unknown_saga_type",
            sagas,
            "escaped quotes and backslashes do not end a string early",
        ),
        h(
            "escaped-backslash-u0000",
            unknown_type(input={"s": "\\u0000", "t": "\\ud800"}),
            "unknown_saga_type",
            sagas,
            "the text \\u0000 (an escaped backslash, then u0000) holds no NUL",
        ),
        h(
            "surrogate-pair",
            unknown_type(input={"s": "\U0001f600"}),
            "unknown_saga_type",
            sagas,
            "json.dumps escapes it as \\ud83d\\ude00: a valid pair is one character",
        ),
        h(
            "big-integer",
            unknown_type(input={"n": int("9" * 400)}),
            "unknown_saga_type",
            sagas,
            "400 digits: a Python int and a jsonb numeric, so accepted",
        ),
        h(
            "duplicate-key-saga-type",
            unknown_type(saga_type="vim-account.create")[:-1]
            + b',"saga_type":"'
            + UNKNOWN_SAGA_TYPE.encode()
            + b'"}',
            "unknown_saga_type",
            sagas,
            "a known saga type (whose empty input is invalid), then an unknown one: the last wins",
        ),
        h(
            "duplicate-key-invalid-then-valid",
            _dump(_start(saga_type="Not A Name"))[:-1]
            + b',"saga_type":"'
            + UNKNOWN_SAGA_TYPE.encode()
            + b'"}',
            "unknown_saga_type",
            sagas,
            "an invalid saga_type, then a valid one: the last wins, so it decodes",
        ),
        h(
            "saga-id-with-slash",
            CancelSaga(saga_id=f"{_fresh()}/../x", reason="hostile"),
            "unknown_saga",
            sagas,
            "`/` is legal in ids; nothing may treat one as a path",
        ),
        h(
            "garbage-traceparent",
            unknown_type(),
            "unknown_saga_type",
            sagas,
            "a malformed trace context is ignored, not fatal",
            headers={"traceparent": "00-zz-\x00-01" + "f" * 5000},
        ),
        h(
            "zero-traceparent",
            unknown_type(),
            "unknown_saga_type",
            sagas,
            "the all-zero trace context is invalid by W3C",
            headers={"traceparent": f"00-{'0' * 32}-{'0' * 16}-01"},
        ),
        h(
            "start-unknown-saga-type",
            StartSaga(saga_type=UNKNOWN_SAGA_TYPE, saga_id=_fresh()),
            "unknown_saga_type",
            sagas,
            "",
        ),
        h(
            "start-invalid-input",
            StartSaga(saga_type=real.saga_type, saga_id=_fresh(), input={"surprise": 1}),
            "invalid_input",
            sagas,
            "",
        ),
        h(
            "start-conflicting-input",
            StartSaga(saga_type=real.saga_type, saga_id=real.saga_id, input=real.conflicting_input),
            "conflict",
            sagas,
            "the saga id exists with another input: not a duplicate",
        ),
        h(
            "cancel-unknown-saga",
            CancelSaga(saga_id=_fresh(), reason="hostile"),
            "unknown_saga",
            sagas,
            "",
        ),
        h("reply-on-sagas-queue", reply(), "unexpected_type", sagas, ""),
        h("command-on-sagas-queue", command(), "unexpected_type", sagas, ""),
        h(
            "start-on-replies-queue",
            StartSaga(saga_type=real.saga_type, saga_id=_fresh()),
            "unexpected_type",
            replies,
            "",
        ),
        h(
            "event-on-replies-queue",
            SagaEvent(
                saga_id=real.saga_id,
                saga_type=real.saga_type,
                status=SagaStatus.COMPLETED,
                at=utc_now(),
            ),
            "unexpected_type",
            replies,
            "",
        ),
        h(
            "wake-on-replies-queue",
            WakeSaga(saga_id=real.saga_id, resource="x"),
            "unexpected_type",
            replies,
            "",
        ),
        h("reply-unknown-saga", reply(saga_id=_fresh()), "unknown_saga", replies, ""),
        h("reply-unknown-step", reply(step="no-such-step"), "unknown_step", replies, ""),
        h(
            "reply-replayed",
            replayed,
            DUPLICATE,
            replies,
            "the same message id twice: the second copy is acked as a duplicate",
            repeat=2,
        ),
        h(
            "reply-forged",
            reply(outcome="failed", result=None, error=ErrorInfo(code="x", message="forged")),
            "forged",
            replies,
            "a reply not published by an adapter's broker user",
            user_id=INTRUDER,
        ),
        h(
            "command-wrong-service",
            command(service=other_service),
            "wrong_service",
            commands,
            f"a {other_service} command on the {real.service} queue",
        ),
        h(
            "command-unknown-action",
            command(action=f"{real.service}.launch-missiles"),
            "unknown_action",
            commands,
            "",
        ),
        h("reply-on-commands-queue", reply(), "wrong_message", commands, ""),
        h(
            "start-on-commands-queue",
            StartSaga(saga_type=real.saga_type, saga_id=_fresh()),
            "wrong_message",
            commands,
            "",
        ),
        h(
            "command-forged",
            command(),
            "forged",
            commands,
            "a command not published by the coordinator's broker user",
            user_id=INTRUDER,
        ),
    ]


# -- POST /sagas: a StartBody, not a message --------------------------------------------------


def _api(real: _Real) -> list[Hostile]:
    api = frozenset({API})

    def h(name: str, value: Any, expect: str, note: str) -> Hostile:
        body = value if isinstance(value, bytes) else _dump(value)
        return Hostile(name=name, body=body, expect=expect, targets=api, note=note)

    unknown = {"saga_type": UNKNOWN_SAGA_TYPE, "saga_id": _fresh(), "input": {}}
    return [
        h("api-unknown-saga-type", unknown, "unknown_saga_type", ""),
        h(
            "api-invalid-input",
            {"saga_type": real.saga_type, "saga_id": _fresh(), "input": {"surprise": 1}},
            "invalid_input",
            "",
        ),
        h(
            "api-conflicting-input",
            {"saga_type": real.saga_type, "saga_id": real.saga_id, "input": real.conflicting_input},
            "conflict",
            "HTTP 409",
        ),
        h("api-missing-saga-type", {"input": {}}, "invalid_message", ""),
        h("api-extra-field", {**unknown, "type": "saga.start"}, "invalid_message", "a message"),
        h(
            "api-at-limit",
            _pad(_dump(unknown), MAX_MESSAGE_BYTES),
            "unknown_saga_type",
            "exactly the API's default body limit, which is inclusive too",
        ),
    ]
