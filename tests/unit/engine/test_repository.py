"""The engine runs its own files of sql/queries/ and the three statements it shares with the
suppression API, through the one loader (tests/unit/test_statements.py checks their lines)."""

from __future__ import annotations

from invite.engine.repository import ENGINE_FILES, statements
from tests.conftest import SQL_DIR


def test_the_engine_runs_its_own_files_and_the_three_it_borrows() -> None:
    loaded = statements(SQL_DIR)
    assert {key.partition(".")[0] for key in loaded} == {*ENGINE_FILES, "suppressions"}
