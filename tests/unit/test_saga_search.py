"""The saga search's parsers: the API's query parameters and cursor, the CLI's filters and
`--query` text, and the one timestamp format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from rich.console import Console

from contracts import SagaStatus
from convection.cli_output import Table, cell, plain, rich_table
from convection.saga_query import BadFilter, filters, parse_query
from convection.timefmt import age, rfc3339
from coordinator.saga_search import BadQuery, decode_cursor, encode_cursor, parse, statuses


def test_every_parameter() -> None:
    f = parse(
        [
            ("status", "running,failed"),
            ("saga_type", "ns.instantiate"),
            ("stuck", "false"),
            ("resource", "ns:ns-web-1"),
            ("input.vim_account_id", "vim-1"),
            ("input.vnfs.0.member", "vnf-lb"),
            ("error_code", "quota_exceeded"),
            ("started_after", "2026-12-01T20:40:00Z"),
            ("until", "2026-12-02T00:00:00+01:00"),
            ("limit", "500"),
        ]
    )
    assert f.statuses == ("running", "failed")
    assert f.saga_type == "ns.instantiate"
    assert f.stuck is False
    assert f.resource == "ns:ns-web-1"
    assert f.input_fields == ((("vim_account_id",), "vim-1"), (("vnfs", 0, "member"), "vnf-lb"))
    assert f.error_code == "quota_exceeded"
    assert f.started_after == datetime(2026, 12, 1, 20, 40, tzinfo=UTC)
    assert f.started_before == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert f.limit == 500
    assert parse([]).limit == 50 and parse([("cursor", "")]).after is None


def test_statuses_come_from_the_enum() -> None:
    assert statuses() == tuple(s.value for s in SagaStatus)


@pytest.mark.parametrize(
    ("pairs", "parameter"),
    [
        ([("colour", "red")], "colour"),
        ([("offset", "10")], "offset"),
        ([("status", "running,sleeping")], "status"),
        ([("stuck", "maybe")], "stuck"),
        ([("limit", "0")], "limit"),
        ([("limit", "501")], "limit"),
        ([("limit", "many")], "limit"),
        ([("since", "2026-01-01T00:00:00")], "since"),
        ([("started_before", "yesterday")], "started_before"),
        ([("since", "2026-01-01T00:00:00Z"), ("started_after", "2026-01-01T00:00:00Z")], ""),
        ([("status", "running"), ("status", "failed")], "status"),
        ([("input.a..b", "x")], "input.a..b"),
        ([("input.", "x")], "input."),
        ([("resource", "ns:\x00")], "resource"),
        ([("cursor", "10^20")], "cursor"),
        ([("cursor", "-5")], "cursor"),
        ([("cursor", "garbage!!")], "cursor"),
        ([("cursor", "WzEsMl0")], "cursor"),  # [1,2]
        ([("cursor", "eyJhIjoxfQ")], "cursor"),  # {"a":1}
    ],
)
def test_a_bad_parameter_is_named(pairs: list[tuple[str, str]], parameter: str) -> None:
    with pytest.raises(BadQuery) as caught:
        parse(pairs)
    if parameter:
        assert caught.value.parameter == parameter
        assert str(caught.value).startswith(f"{parameter}: ")
    if parameter == "cursor":
        assert caught.value.message == "not a cursor from this API"


def test_a_cursor_round_trips_to_the_microsecond() -> None:
    at = datetime(2026, 12, 1, 20, 40, 0, 123456, tzinfo=UTC)
    cursor = encode_cursor((at, "a/b:c"))
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor) == (at, "a/b:c")


def test_the_cli_filters_and_the_query_text_give_the_same_parameters() -> None:
    from_options = filters(
        status="running,pending",
        saga_type="ns.instantiate",
        stuck=True,
        inputs=["vim_account_id=vim-1", "credentials.project=osm"],
        error_code="boom",
        started_after="2026-12-01T00:00:00Z",
    )
    from_query = parse_query(
        "status=running,pending, type=ns.instantiate,stuck=true,input.vim_account_id=vim-1,"
        "input.credentials.project=osm,error-code=boom,since=2026-12-01T00:00:00Z"
    )
    assert from_options == from_query
    assert parse(from_query.items()).input_fields[1] == (("credentials", "project"), "osm")
    assert parse_query('input.note="a,b=c",resource=ns:x') == {
        "input.note": "a,b=c",
        "resource": "ns:x",
    }
    assert parse_query("input.note=a,b") == {"input.note": "a,b"}
    assert filters(stuck=False) == {"stuck": "false"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "--query"),
        ("colour=red", "colour"),
        ("running", "running"),
        ("status=a,status=b", "status"),
        ("type=a,saga_type=b", "saga_type"),
        ('input.x="open', "--query"),
    ],
)
def test_a_bad_query_text_names_the_filter(text: str, named: str) -> None:
    with pytest.raises(BadFilter) as caught:
        parse_query(text)
    assert caught.value.name == named


def test_an_input_option_needs_field_and_value() -> None:
    with pytest.raises(BadFilter, match="--input"):
        filters(inputs=["no-equals-sign"])


def test_one_timestamp_format() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 12, 1, 22, 40, 0, 123456, tzinfo=plus_two)) == (
        "2026-12-01T20:40:00.123Z"
    )
    naive = datetime(2026, 12, 1, 20, 40)  # noqa: DTZ001 - a naive time is taken as UTC
    assert rfc3339(naive) == "2026-12-01T20:40:00.000Z"
    assert [age(s) for s in (5, 65, 3725, 90000)] == ["5s", "1m05s", "1h02m", "1d01h"]


def test_plain_lines_keep_ids_whole_and_one_line_per_row() -> None:
    long_id = "ns-web-1-instantiate-" + "x" * 60
    table = Table("sagas", ("saga_id", "note"), [[long_id, "two\nlines\tand a tab"]])
    assert plain([table], titled=False) == f"saga_id\tnote\n{long_id}\ttwo lines and a tab\n"
    assert plain([table], titled=True).startswith("# sagas\n")
    assert cell(None) == ""


def test_a_terminal_table_never_truncates_an_id() -> None:
    long_id = "ns-web-1-instantiate-" + "x" * 40
    table = Table(
        "sagas",
        ("saga_id", "type", "status", "error"),
        [[long_id, "ns.instantiate", "failed", "quota_exceeded: " + "over quota " * 8]],
    )
    console = Console(width=100, force_terminal=True, color_system=None, record=True)
    console.print(rich_table(table))
    text = console.export_text()
    assert long_id in text, text
    assert "…" not in text
