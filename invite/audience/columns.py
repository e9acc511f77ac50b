"""Which column holds what: header aliases (English and Russian), the header row, a mapping,
and, for the columns no alias names, a word in the header and what the column holds.

A sheet read from CSV or XLSX still holds its header among its rows (there may be a title
row and blank rows above it); JSON and parsing results name their columns by their keys.
``detect`` finds the header and maps columns to roles in three steps:

1. a header that *is* a known alias (``username``, ``Телефон``, ``ID пользователя``) names
   its column's role; an explicit mapping (role → header) overrides this role by role;
2. a column no alias names is guessed: by a known word inside its header (``Ник в Telegram``
   → username, ``Номер телефона клиента`` → phone) and by its values, read by the import's
   own rules (mostly usernames or ``t.me`` links, user ids, phones, names). Values that
   cannot be mistaken (``@names`` and links, valid phones) name their column's role on their
   own, over a header word; a likelier-than-not reading (bare numbers as user ids, bare words
   as usernames, names) yields to a header word, and stands alone only when no header names
   a role of its kind: a column of order numbers beside a ``username`` column is not a
   second key of the person. Each guess is reported with its reason;
3. no header at all: the columns are guessed by their values, else the first column that
   holds anything is a lone column of identifiers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import polars as pl

from invite.audience.normalise import Kind, cell_kinds
from invite.audience.schemas import IDENTIFYING as IDENTIFYING
from invite.audience.schemas import Role as Role
from invite.kernel.problems import InvalidParam, Problem

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

# Words inside a longer header that say what its column holds: (role, words, context). The
# first rule with one of ``words`` (and, when given, one of ``context``) in the header wins,
# so the order matters: "ID в Telegram" is a user id, "Телефон в Telegram" a phone, "Ник в
# Telegram" a username. A word ending in * matches by its start (телефона, никнеймы). A bare
# "id" needs a word for the person beside it: "group id", "task id" are someone else's.
_PERSON = ("telegram", "tg", "телеграм*", "user", "пользовател*", "юзер*", "member", "участник*")
_WORD_RULES: tuple[tuple[Role, tuple[str, ...], tuple[str, ...]], ...] = (
    (Role.USER_ID, ("id", "ид", "айди"), _PERSON),
    (Role.PHONE, ("телефон*", "phone*", "mobile", "мобильн*", "тел", "telephone"), ()),
    (Role.USERNAME, ("ник*", "username*", "юзернейм*", "логин*", "login", "nick*", "handle"), ()),
    (Role.FULL_NAME, ("фио",), ()),
    (Role.FULL_NAME, ("имя",), ("фамили*",)),
    (Role.FULL_NAME, ("full", "полное", "display", "отображаем*"), ("name", "имя")),
    (Role.LAST_NAME, ("фамили*", "surname", "lastname"), ()),
    (Role.LAST_NAME, ("last", "family"), ("name",)),
    (Role.FIRST_NAME, ("имя", "firstname"), ()),
    (Role.FIRST_NAME, ("first", "given"), ("name",)),
    (Role.USERNAME, ("telegram", "tg", "телеграм*", "ссылк*", "link*", "профил*", "profile"), ()),
)
_NAMES = frozenset({Role.FIRST_NAME, Role.LAST_NAME, Role.FULL_NAME})
_SAMPLE_ROWS = 500  # data rows whose values a guess reads
_IDENTIFIER_KINDS = frozenset({Kind.USERNAME, Kind.BARE_USERNAME, Kind.USER_ID, Kind.PHONE})
Grid = list[list[Kind | None]]  # what each cell of a sheet's first rows reads as, column by column
_AGREE = 0.8  # the share of a column's values that must read as one kind for a guess


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


def _has_word(words: set[str], wanted: tuple[str, ...]) -> str | None:
    for want in wanted:
        stem = want.removesuffix("*")
        for word in words:
            if word == want or (want.endswith("*") and word.startswith(stem)):
                return word
    return None


def word_role(label: str) -> tuple[Role, str] | None:
    """The role a known word inside ``label`` says its column holds, with the word."""
    words = set(normalise_header(label).split())
    for role, wanted, context in _WORD_RULES:
        word = _has_word(words, wanted)
        if word is not None and (not context or _has_word(words, context) is not None):
            return role, word
    return None


class Guess(NamedTuple):
    role: Role
    why: str
    sure: bool  # unmistakable (@names and t.me links, valid phones), else only a likely reading


def guess_by_values(cells: Sequence[Kind | None]) -> Guess | None:
    """The role a column's cells say it holds, and why; None when they do not agree."""
    kinds = Counter(cells)
    n = len(cells) - kinds[None]
    explicit, words = kinds[Kind.USERNAME], kinds[Kind.WORD]
    handles = explicit + kinds[Kind.BARE_USERNAME]
    ids, phones = kinds[Kind.USER_ID], kinds[Kind.PHONE]
    names = kinds[Kind.NAME] + kinds[Kind.FULL_NAME] + words
    if not n:
        return None
    if handles * 2 >= n and handles + words >= _AGREE * n:
        why = f"{handles + words} of {n} values are usernames or t.me links"
        return Guess(Role.USERNAME, why, explicit * 2 >= n)
    if ids >= _AGREE * n:
        return Guess(Role.USER_ID, f"{ids} of {n} values are Telegram user ids", False)
    if phones >= _AGREE * n:
        return Guess(Role.PHONE, f"{phones} of {n} values are phone numbers", True)
    if handles + ids + phones >= _AGREE * n:
        why = f"{handles + ids + phones} of {n} values are usernames, user ids or phones"
        return Guess(Role.IDENTIFIER, why, False)
    if names >= _AGREE * n:
        role = Role.FULL_NAME if kinds[Kind.FULL_NAME] * 2 >= n else Role.FIRST_NAME
        return Guess(role, f"{names} of {n} values are names", False)
    return None


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
    guessed: dict[Role, str] = field(default_factory=dict)  # role → why it was guessed


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


def _header_index(frame: pl.DataFrame, mapping: Mapping[str, str | None], kinds: Grid) -> int | None:
    """The first row that reads as a header: it names an identifying column, or two roles,
    or every header the mapping names, or holds nothing but known headers (a lone ``name``
    is a header, never a person called Name); or a word in it names an identifying column
    while none of its cells reads as an identifier (a lone title row of a wider sheet, such
    as "Telegram: участники", is not a header)."""
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
        worded = {w[0] for c in cells if (w := word_role(c)) is not None}
        looks_like_data = _IDENTIFIER_KINDS & {column[index] for column in kinds}
        if worded & IDENTIFYING and (len(cells) > 1 or frame.width == 1) and not looks_like_data:
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


def detect(
    frame: pl.DataFrame, *, named: bool, region: str, mapping: Mapping[str, str | None] | None = None
) -> Layout:
    """Find the header and the role of each column; Problem 422 when no column identifies people.
    ``region`` reads phones written without a country code, as the import does."""
    kinds = cell_kinds(frame.head(_HEADER_SEARCH_ROWS + _SAMPLE_ROWS), region)
    mapping = mapping or {}
    names = frame.columns
    if named:
        labels, header_row, data_start = [_label(name) for name in names], None, 0
    else:
        index = _header_index(frame, mapping, kinds)
        if index is None and not mapping:
            index = _header_by_values(frame, kinds)
        if index is None:
            if mapping:
                _check_mapping(mapping, [])
            return _headerless(frame, kinds)
        labels = ["" if c is None else _label(c) for c in frame.row(index)]
        header_row, data_start = index + 1, index + 1
    _check_mapping(mapping, labels)
    chosen = _assign(labels, mapping)
    guessed = _guess(_rows(kinds, data_start), labels, chosen, mapping.keys())
    chosen.update({role: position for role, (position, _) in guessed.items()})
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
        guessed={role: why for role, (_, why) in guessed.items()},
    )


def _guess(
    kinds: Grid, labels: list[str], chosen: dict[Role, int], mapped: Iterable[str]
) -> dict[Role, tuple[int, str]]:
    """Roles for the columns no alias named: role → (position, why). Roles the aliases or the
    mapping settled are not guessed again."""
    settled = set(chosen) | {Role(name) for name in mapped}
    words = {p: w for p, label in enumerate(labels) if p not in chosen.values() and (w := word_role(label))}
    headed = settled | {role for role, _ in words.values()}
    guesses: dict[Role, tuple[int, str]] = {}
    for position, label in enumerate(labels):
        if position in chosen.values():
            continue
        word = words.get(position)
        by_values = guess_by_values(kinds[position])
        if word is not None and (by_values is None or not by_values.sure or by_values.role == word[0]):
            role, why = word[0], f"header {label!r} contains {word[1]!r}"
            if by_values is not None and by_values.role == role:
                why = f"{why}; {by_values.why}"
        elif by_values is not None and (by_values.sure or not headed & _kin(by_values.role)):
            role, why = by_values.role, by_values.why
        else:
            continue
        if role not in settled and role not in guesses:
            guesses[role] = (position, why)
    return guesses


def _kin(role: Role) -> frozenset[Role]:
    """The roles that make an unsure guess by values alone unneeded: one identifying column
    named by its header is enough to find people by, one name column to greet them by."""
    return IDENTIFYING if role in IDENTIFYING else _NAMES if role in _NAMES else frozenset({role})


def _rows(kinds: Grid, start: int) -> Grid:
    """The kinds of the sample rows from ``start`` on."""
    return [column[start : start + _SAMPLE_ROWS] for column in kinds]


def _header_by_values(frame: pl.DataFrame, kinds: Grid) -> int | None:
    """A header no word gives away (``Контакт``, ``Кто``): the first row with something in
    it whose columns the values below it identify, while its own cells there read as no
    identifier. A row that reads as the people below it is data, and so is all that follows."""
    labels = [f"column {position + 1}" for position in range(frame.width)]
    for index, row in enumerate(frame.head(_HEADER_SEARCH_ROWS).iter_rows()):
        cells = ["" if c is None else c for c in row]
        if not any(c.strip() for c in cells):
            continue
        below = _guess(_rows(kinds, index + 1), labels, {}, ())
        under = [position for role, (position, _) in below.items() if role in IDENTIFYING]
        if not under:
            continue  # a title row above the header, or rows of nothing that identifies people
        own = [guess_by_values([kinds[p][index]]) for p in under]
        header = any(cells[p].strip() for p in under) and all(
            g is None or g.role not in IDENTIFYING for g in own
        )
        return index if header else None
    return None


def _headerless(frame: pl.DataFrame, kinds: Grid) -> Layout:
    """No header: columns guessed by their values (a lone column of identifiers is read as
    such); else the first column that holds anything is a column of identifiers."""
    filled = [(p, name) for p, name in enumerate(frame.columns) if frame.get_column(name).drop_nulls().len()]
    if not filled:
        raise Problem(422, "Empty file", "the file holds no data", field="file", reason="empty")
    if len(filled) > 1:
        labels = [f"column {position + 1}" for position in range(frame.width)]
        guessed = _guess(_rows(kinds, 0), labels, {}, ())
        if IDENTIFYING & guessed.keys():
            return Layout(
                columns={role: frame.columns[p] for role, (p, _) in guessed.items()},
                labels={role: labels[p] for role, (p, _) in guessed.items()},
                header_row=None,
                data_start=0,
                guessed={role: why for role, (_, why) in guessed.items()},
            )
    position, name = filled[0]
    return Layout({Role.IDENTIFIER: name}, {Role.IDENTIFIER: f"column {position + 1}"}, None, 0)
