"""docs/operations.md lists every setting, with its real default, and nothing else."""

from __future__ import annotations

import re

import msgspec

from invite.kernel.settings import ROOT, Settings

# defaults computed at start-up (paths of the checkout, host name): described, not quoted
COMPUTED = {"data_dir", "sql_dir", "replica_id"}
_ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$")


def _table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Every setting", 1)[1]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = _ROW.match(line.strip())
        if match:
            assert match[1] not in rows, f"{match[1]} is listed twice"
            rows[match[1]] = (match[2].strip(), match[3].strip())
    return rows


def _documented(default: object, cell: str) -> bool:
    if default is None:
        return cell == "*unset*"
    if isinstance(default, bool):
        return cell == str(default).lower()
    if isinstance(default, int | float):
        return float(cell) == default
    return cell == f"`{default}`"


def test_every_setting_is_in_the_table_and_nothing_else() -> None:
    fields = {f.name.upper() for f in msgspec.structs.fields(Settings)}
    assert set(_table()) == fields


def test_the_table_shows_each_default() -> None:
    table = _table()
    for field in msgspec.structs.fields(Settings):
        cell, meaning = table[field.name.upper()]
        assert meaning, f"{field.name} has no explanation"
        if field.name in COMPUTED:
            assert cell.startswith("*"), f"{field.name}: describe the computed default"
        else:
            assert _documented(field.default, cell), (
                f"{field.name}: the table says {cell}, the code {field.default!r}"
            )
