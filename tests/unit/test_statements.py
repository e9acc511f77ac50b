"""Every named statement's `-- args:` line names its parameters, checked as the one loader reads
sql/queries/: a call passes them by name, so a line that does not match the statement's
placeholders, or a call missing a name, fails at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from invite.kernel.db import Queries, Statement, queries
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


def test_every_statement_of_sql_queries_names_its_arguments() -> None:
    loaded = queries(SQL_DIR)
    files = {path.stem for path in (Path(SQL_DIR) / "queries").glob("*.sql")}
    assert {key.partition(".")[0] for key in loaded} == files  # every file, the API's and the engine's
    for key in loaded:
        statement = loaded.statement(key)
        assert statement.key == key
        assert all(name.isidentifier() for name in statement.params)


def test_the_loader_refuses_a_statement_without_its_line_in_any_file(tmp_path: Path) -> None:
    (tmp_path / "claims.sql").write_text("-- name: ok\n-- args: $1 task_id\nSELECT $1::uuid\n")
    (tmp_path / "reports.sql").write_text("-- name: stats\n-- why it is so\nSELECT $1::uuid\n")
    with pytest.raises(ValueError, match=r"reports\.stats has no '-- args:' line"):
        Queries(tmp_path)
