"""A statement's `-- args:` line names its parameters: the repository passes them by name, so a line
that does not match the statement's placeholders, or a call missing a name, fails at once."""

from __future__ import annotations

import pytest

from invite.engine.repository import ENGINE_FILES, Statement, statements
from tests.conftest import SQL_DIR

SQL = (
    "-- args: $1 task_id, $2 now\n-- why\nSELECT $1::uuid, $2::timestamptz -- $3 in a comment is no parameter"
)


def test_arguments_are_passed_by_name_in_the_order_the_line_gives() -> None:
    statement = Statement.parse("x.y", SQL)
    assert statement.params == ("task_id", "now")
    assert statement.bind({"now": 2, "task_id": 1}) == (1, 2)


@pytest.mark.parametrize(
    "given", [{"task_id": 1}, {"task_id": 1, "now": 2, "limit": 3}, {"task": 1, "now": 2}]
)
def test_a_call_must_name_every_argument_and_no_other(given: dict[str, int]) -> None:
    with pytest.raises(TypeError, match="takes task_id, now"):
        Statement.parse("x.y", SQL).bind(given)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT $1",  # no line
        "-- args: $1 a\nSELECT $1, $2",  # a placeholder it does not name
        "-- args: $1 a, $2 b\nSELECT $1",  # a name for no placeholder
        "-- args: $2 a, $1 b\nSELECT $1, $2",  # out of order
        "-- args: $1 a, $2 a\nSELECT $1, $2",  # one name twice
        "-- args: $1 a; $2 b\nSELECT $1, $2",  # not the form "$n name, ..."
    ],
)
def test_a_line_that_does_not_match_the_statement_is_refused(sql: str) -> None:
    with pytest.raises(ValueError, match=r"x\.y"):
        Statement.parse("x.y", sql)


def test_every_statement_of_the_engine_names_its_arguments() -> None:
    loaded = statements(SQL_DIR)
    assert {key.partition(".")[0] for key in loaded} == {*ENGINE_FILES, "suppressions"}
