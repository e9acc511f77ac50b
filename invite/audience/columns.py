"""Which column holds what: header aliases (English and Russian), the header row, a mapping.

A sheet read from CSV or XLSX still holds its header among its rows (there may be a title
row and blank rows above it); JSON and parsing results name their columns by their keys.
``detect`` finds the header, maps columns to roles, and falls back to a single unnamed
column of identifiers. An explicit mapping (role → header) overrides detection role by role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from invite.problems import InvalidParam, Problem


class Role(StrEnum):
    USERNAME = "username"
    USER_ID = "user_id"
    PHONE = "phone"
    IDENTIFIER = "identifier"  # a lone column of usernames, ids and phones, told apart by value
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    FULL_NAME = "full_name"
    IS_BOT = "is_bot"
    USER_TYPE = "user_type"


IDENTIFYING = frozenset({Role.USERNAME, Role.USER_ID, Role.PHONE, Role.IDENTIFIER})

# Normalised header → (role, rank). A lower rank wins when two columns claim one role: the
# Parsing Service export carries both ``platform_id`` (the Telegram user id) and
# ``specific_user_id``; both beat a bare ``id``, which may be some other row id.
_ALIASES: dict[str, tuple[Role, int]] = {}


def _alias(role: Role, rank: int, *names: str) -> None:
    for name in names:
        _ALIASES[name] = (role, rank)


_alias(
    Role.USERNAME,
    0,
    "username",
    "user name",
    "telegram username",
    "tg username",
    "юзернейм",
    "юзернейм telegram",
    "имя пользователя",
    "логин",
    "login",
    "ник",
    "никнейм",
    "nick",
    "nickname",
    "handle",
)
_alias(Role.USERNAME, 1, "telegram", "tg", "link", "profile link", "ссылка", "ссылка на профиль", "профиль")
_alias(
    Role.USER_ID,
    0,
    "user id",
    "userid",
    "telegram id",
    "tg id",
    "telegram user id",
    "platform id",
    "id пользователя",
    "айди",
    "ид пользователя",
)
_alias(Role.USER_ID, 1, "uid", "member id")
_alias(Role.USER_ID, 2, "id", "ид")
_alias(
    Role.PHONE,
    0,
    "phone",
    "phone number",
    "author phone",
    "mobile",
    "mobile phone",
    "telephone",
    "tel",
    "телефон",
    "номер телефона",
    "мобильный",
    "мобильный телефон",
    "тел",
)
_alias(Role.PHONE, 1, "номер", "number")
_alias(Role.FIRST_NAME, 0, "first name", "firstname", "given name", "имя")
_alias(Role.LAST_NAME, 0, "last name", "lastname", "surname", "family name", "фамилия")
_alias(
    Role.FULL_NAME,
    0,
    "full name",
    "display name",
    "name",
    "фио",
    "имя и фамилия",
    "полное имя",
    "отображаемое имя",
)
_alias(Role.IS_BOT, 0, "is bot", "bot", "бот")
_alias(Role.USER_TYPE, 0, "user type", "тип пользователя")
# Every role's own name (``user_id``, ``identifier``, …), as the docs and the mapping name
# them, is an alias: a file headed with one is never read as holding a person of that name.
_alias(Role.IDENTIFIER, 0, "identifier", "identifiers", "идентификатор", "идентификаторы")

# Prefixes of the Parsing Service exports: CSV ``specific_<key>``, XLSX ``Extra <key>``,
# JSON ``platform_specific_data.<key>`` once flattened. They rank behind the plain columns.
_PREFIXES = ("platform specific data ", "specific ", "extra ")
_NON_WORD = re.compile(r"[\W_]+")
_HEADER_SEARCH_ROWS = 20


def normalise_header(label: str) -> str:
    return _NON_WORD.sub(" ", label.casefold()).strip()


def role_of(label: str, *, parsing_export: bool = False) -> tuple[Role, int] | None:
    """The role a header names, with its rank; None when it names none."""
    name = normalise_header(label)
    penalty = 0
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name, penalty = name[len(prefix) :], 1
            break
    found = _ALIASES.get(name)
    if found is None:
        return None
    role, rank = found
    if parsing_export and name == "id" and not penalty:
        return None  # the export's own row id, not a Telegram user id
    return role, rank * 2 + penalty


def _is_parsing_export(labels: list[str]) -> bool:
    names = {normalise_header(label) for label in labels}
    return "platform id" in names or {"task id", "platform"} <= names


@dataclass(frozen=True)
class Layout:
    """Where the people are in a sheet."""

    columns: dict[Role, str]  # role → frame column
    labels: dict[Role, str]  # role → the header as written in the file (or "column N")
    header_row: int | None  # 1-based row of the header in the file; None: no header row
    data_start: int  # index of the first data row in the frame


def _assign(labels: list[str], mapping: Mapping[str, str | None]) -> dict[Role, int]:
    parsing_export = _is_parsing_export(labels)
    best: dict[Role, tuple[int, int]] = {}  # role → (rank, position)
    for position, label in enumerate(labels):
        found = role_of(label, parsing_export=parsing_export)
        if found and (found[0] not in best or found[1] < best[found[0]][0]):
            best[found[0]] = (found[1], position)
    chosen = {role: position for role, (_, position) in best.items()}
    normalised = [normalise_header(label) for label in labels]
    for role_name, header in mapping.items():
        role = Role(role_name)
        if header is None:
            chosen.pop(role, None)
        else:
            chosen[role] = normalised.index(normalise_header(header))
    return chosen


def _header_index(frame: pl.DataFrame, mapping: Mapping[str, str | None]) -> int | None:
    """The first row that reads as a header: it names an identifying column, or two roles,
    or every header the mapping names, or holds nothing but known headers (a lone ``name``
    is a header, never a person called Name)."""
    wanted = {normalise_header(h) for h in mapping.values() if h is not None}
    for index, row in enumerate(frame.head(_HEADER_SEARCH_ROWS).iter_rows()):
        cells = [c for c in row if c is not None and c.strip()]
        if not cells:
            continue
        names = {normalise_header(c) for c in cells}
        if wanted:
            if wanted <= names:
                return index
            continue
        found = [role_of(c) for c in cells]
        roles = {f[0] for f in found if f is not None}
        if roles & IDENTIFYING or len(roles) >= 2 or None not in found:
            return index
    return None


def _check_mapping(mapping: Mapping[str, str | None], labels: list[str]) -> None:
    present = {normalise_header(label) for label in labels}
    params = []
    for role_name, header in mapping.items():
        if role_name not in Role.__members__.values():
            params.append(InvalidParam(f"mapping.{role_name}", f"unknown role; use one of {_role_list()}"))
        elif header is not None and normalise_header(header) not in present:
            shown = ", ".join(repr(label) for label in labels[:30])
            params.append(InvalidParam(f"mapping.{role_name}", f"no column {header!r} in the file ({shown})"))
    if params:
        raise Problem(
            422, "Invalid column mapping", "the mapping names columns the file does not have", params=params
        )


def _role_list() -> str:
    return ", ".join(role.value for role in Role)


def _label(header: str) -> str:
    """A header as the report shows it: NULs dropped (PostgreSQL stores none), trimmed."""
    return header.replace("\x00", "").strip()


def detect(frame: pl.DataFrame, *, named: bool, mapping: Mapping[str, str | None] | None = None) -> Layout:
    """Find the header and the role of each column; Problem 422 when no column identifies people."""
    mapping = mapping or {}
    names = frame.columns
    if named:
        labels, header_row, data_start = [_label(name) for name in names], None, 0
    else:
        index = _header_index(frame, mapping)
        if index is None:
            if mapping:
                _check_mapping(mapping, [])
            return _headerless(frame)
        labels = ["" if c is None else _label(c) for c in frame.row(index)]
        header_row, data_start = index + 1, index + 1
    _check_mapping(mapping, labels)
    chosen = _assign(labels, mapping)
    if not IDENTIFYING & chosen.keys():
        shown = ", ".join(repr(label) for label in labels if label)[:500]
        raise Problem(
            422,
            "No identifier column",
            f"found no column of usernames, user ids or phones among {shown}; "
            "name one (e.g. username, user id, phone, логин, телефон) or pass a mapping",
            field="file",
            reason="no column of usernames, user ids or phones",
        )
    return Layout(
        columns={role: names[position] for role, position in chosen.items()},
        labels={role: labels[position] for role, position in chosen.items()},
        header_row=header_row,
        data_start=data_start,
    )


def _headerless(frame: pl.DataFrame) -> Layout:
    """No header: the first column that holds anything is a column of identifiers."""
    for position, name in enumerate(frame.columns):
        if frame.get_column(name).drop_nulls().len():
            return Layout({Role.IDENTIFIER: name}, {Role.IDENTIFIER: f"column {position + 1}"}, None, 0)
    raise Problem(422, "Empty file", "the file holds no data", field="file", reason="empty")
