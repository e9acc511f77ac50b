"""Property tests: any bytes, as CSV, JSON or XLSX, are read and checked or refused as a problem.

The import's CPU half, without the database: ``read_file`` then ``analyse`` then ``decide``
either refuse the file with a 4xx Problem or give a report whose counts add up, row by row.
No other exception, whatever the bytes. (The database half, that what is written matches
the report and a refusal writes nothing, is ``tests/integration/test_import_hostile.py``.)
"""

from __future__ import annotations

import codecs
import io
import json
import string

import openpyxl
import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from invite.audience.readers import ReadLimits, read_file
from invite.audience.service import _counts, analyse, candidate_keys, decide
from invite.kernel.problems import Problem

LIMITS = ReadLimits(max_bytes=256 * 1024, max_uncompressed_bytes=2 * 1024 * 1024)
NAMES = ["people.csv", "people.json", "people.xlsx", "people.txt", "people", "people.tsv"]
HEADERS = [
    "username",
    "user_id",
    "phone",
    "Телефон",
    "Имя",
    "first_name",
    "id",
    "is_bot",
    "",
    "@",
    "username\x00",
    "\x00phone",
]
CELL_ALPHABET = string.printable + "@+()-–—_.,;|\t\"'{}[]\\ \u00a0\u200bÿЖж€😀\x00\x01\x1b"

cells = st.one_of(
    st.text(alphabet=CELL_ALPHABET, max_size=40),
    st.sampled_from(["alice_b", "@bob_the_b", "t.me/carol_c", "+7 912 345-67-89", "42", "-1", "1e9", "true"]),
    st.integers(min_value=-(2**63), max_value=2**63).map(str),
)
tables = st.lists(st.lists(cells, min_size=0, max_size=6), min_size=0, max_size=25)


def csv_bytes(header: list[str], rows: list[list[str]], delimiter: str, encoding: str, bom: bool) -> bytes:
    lines = [delimiter.join(header), *(delimiter.join(row) for row in rows)]
    text = "\n".join(lines)
    data = text.encode(encoding, errors="replace")
    return (codecs.BOM_UTF8 if bom and encoding == "utf-8" else b"") + data


csv_files = st.builds(
    csv_bytes,
    st.lists(st.sampled_from(HEADERS), max_size=6),
    tables,
    st.sampled_from([",", ";", "\t", "|", " "]),
    st.sampled_from(["utf-8", "cp1251", "utf-16"]),
    st.booleans(),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(alphabet=CELL_ALPHABET, max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(HEADERS), inner, max_size=5),
    max_leaves=40,
)
json_files = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(
        st.dictionaries(st.sampled_from(HEADERS), cells | st.integers() | st.none(), max_size=5), max_size=20
    ).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.dictionaries(st.sampled_from(["results", "data", "users", "x"]), json_values, max_size=2).map(
        lambda v: json.dumps(v).encode()
    ),
)


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        # openpyxl refuses the control characters XML cannot hold: leave them out of the cell
        sheet.append(["".join(c for c in cell if c.isprintable() or c in "\t\n") for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def corrupt(data: bytes, cuts: list[tuple[int, int]], truncate: int) -> bytes:
    """``data`` with some bytes overwritten and the tail cut off."""
    mutable = bytearray(data)
    for position, value in cuts:
        if mutable:
            mutable[position % len(mutable)] = value
    return bytes(mutable[: max(len(mutable) - truncate, 0)])


xlsx_files = st.builds(xlsx_bytes, tables)
damaged = st.builds(
    corrupt,
    st.one_of(csv_files, json_files, xlsx_files),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    st.integers(0, 64),
)
any_file = st.one_of(st.binary(max_size=2048), csv_files, json_files, xlsx_files, damaged)


def check(data: bytes, name: str) -> None:
    """Refused as a 4xx problem, or read into a report that accounts for every row."""
    refused: int | None = None
    try:
        sheet = read_file(data, name, None, LIMITS)
        analysis = analyse(sheet, None, "RU")
    except Problem as problem:
        refused = problem.status
    event("refused" if refused is not None else "read")
    if refused is not None:
        assert 400 <= refused < 500
        return
    keys = candidate_keys(analysis)
    assert all(k.startswith(("u:", "id:", "p:")) for k in keys)
    capacity = 10
    decided = decide(
        analysis, existing=set(keys[:1]), suppressed=set(keys[1:2]), capacity=capacity, limit=capacity
    )
    counts = _counts(decided)
    assert counts.rows == decided.height == analysis.people.height
    assert counts.imported + counts.rejected == counts.rows
    assert counts.rejected == (
        counts.invalid
        + counts.no_identifier
        + counts.bots
        + counts.duplicates
        + counts.suppressed
        + counts.already_in_task
        + counts.over_limit
    )
    assert counts.imported <= capacity
    imported = decided.filter(pl.col("code").is_null())
    assert imported.get_column("key").null_count() == 0, "every imported person has an identifier"
    assert imported.get_column("key").is_unique().all(), "nobody is imported twice"
    assert not any("\x00" in (v or "") for v in imported.get_column("user_data").to_list())
    for data_json in imported.get_column("user_data").to_list():
        assert isinstance(json.loads(data_json), dict)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(any_file, st.sampled_from(NAMES))
def test_any_bytes_are_read_or_refused(data: bytes, name: str) -> None:
    check(data, name)


@SETTINGS
@given(csv_files)
def test_any_csv_is_read_or_refused(data: bytes) -> None:
    check(data, "people.csv")


@SETTINGS
@given(json_files)
def test_any_json_is_read_or_refused(data: bytes) -> None:
    check(data, "people.json")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(xlsx_files, damaged))
def test_any_xlsx_is_read_or_refused(data: bytes) -> None:
    check(data, "people.xlsx")


# --- columns found whatever their order, their headers and their language -------------------

# Headers by how detection knows them: an alias, a known word inside, or nothing at all.
COLUMN_HEADERS = {
    "username": {
        "alias": ["username", "Username", "Логин", "ник", "Юзернейм"],
        "word": ["Ник в Telegram", "Telegram username клиента", "Профиль TG", "логин в телеграме"],
        "unknown": ["Контакт", "col A", "Who", "Поле 1"],
    },
    "phone": {
        "alias": ["phone", "Телефон", "Номер телефона", "Mobile"],
        "word": ["Номер телефона клиента", "Phone (mobile)", "Телефон для связи", "contact phone"],
        "unknown": ["Связь", "col B", "Поле 2"],
    },
    "user_id": {
        "alias": ["user id", "ID пользователя", "Telegram ID"],
        "word": ["ID в Telegram", "Telegram user ID клиента", "id участника"],
        "unknown": ["Код", "col C", "Поле 3"],
    },
    "first_name": {
        "alias": ["first name", "Имя"],
        "word": ["Имя клиента", "Given name (EN)"],
        "unknown": ["Обращение", "col D"],
    },
}
NOISE = {"Дата": lambda n: f"2026-01-{n % 28 + 1:02}", "Сумма": lambda n: str(n * 7 % 900 + 1)}
FIRST_NAMES = ["Алиса", "Борис", "Вера", "Анна", "Ivan", "Olga", "Мария", "John"]


@st.composite
def people_sheets(draw: st.DrawFn) -> tuple[bytes, dict[str, str], list[dict[str, str]], set[str]]:
    """(CSV, role → how its header is known, people, the roles detection must find)."""
    size = draw(st.integers(3, 25))
    usernames = draw(
        st.lists(
            st.from_regex(r"[a-z][a-z0-9]{4,12}", fullmatch=True), min_size=size, max_size=size, unique=True
        )
    )
    people = [
        {
            "username": name,
            "phone": f"+7912{n:07}",
            "user_id": str(100_000_000 + n * 7919),
            "first_name": draw(st.sampled_from(FIRST_NAMES)),
        }
        for n, name in enumerate(usernames)
    ]
    roles = draw(
        st.sets(st.sampled_from(sorted(COLUMN_HEADERS)), min_size=1).filter(lambda r: r != {"first_name"})
    )
    known = {role: draw(st.sampled_from(["alias", "word", "unknown"])) for role in roles}
    headers = {role: draw(st.sampled_from(COLUMN_HEADERS[role][known[role]])) for role in roles}
    explicit = draw(st.booleans())  # usernames as @name and t.me links, or bare
    styles = ["@{}", "t.me/{}", "https://t.me/{}"] if explicit else ["{}"]
    noise = draw(st.lists(st.sampled_from(sorted(NOISE)), unique=True))
    columns = [*roles, *noise]
    order = draw(st.permutations(columns))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))

    def cell(column: str, n: int) -> str:
        if column in NOISE:
            return NOISE[column](n)
        value = people[n][column]
        return styles[n % len(styles)].format(value) if column == "username" else value

    lines = [delimiter.join(headers.get(c, c) for c in order)]
    lines += [delimiter.join(cell(c, n) for c in order) for n in range(size)]
    # What must be found: every column whose header is known; a column known by its values
    # alone when they are unmistakable (@names, links, phones) or no header names a column
    # of its kind (an identifier, or a name).
    identifying = {"username", "phone", "user_id"}
    named_identifier = any(known[r] != "unknown" for r in roles & identifying)
    must = {r for r in roles if known[r] != "unknown"}
    must |= {r for r in roles & identifying if r == "phone" or (r == "username" and explicit)}
    if not named_identifier:
        must |= roles & identifying
    if "first_name" in roles and known["first_name"] == "unknown":
        must.add("first_name")
    return "\n".join(lines).encode(), known, people, must


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people_sheets())
def test_columns_are_found_shuffled_renamed_and_in_either_language(
    sheet: tuple[bytes, dict[str, str], list[dict[str, str]], set[str]],
) -> None:
    data, known, people, must = sheet
    analysis = analyse(read_file(data, "people.csv", None, LIMITS), None, "RU")
    layout = analysis.layout
    found = {role.value for role in layout.columns}
    event(f"found {len(found)}")
    assert must <= found, (must, layout.labels)
    assert found <= set(known) | {"identifier"}, layout.labels  # no noise column taken
    assert "identifier" not in found or not found & {"username", "phone", "user_id"} - {"identifier"}
    for role in found:
        assert (role in {"username", "phone", "user_id", "first_name"} and known.get(role) == "alias") != (
            role in {r.value for r in layout.guessed}
        ), (role, layout.guessed)
    rows = analysis.people.sort("row")
    assert rows.get_column("code").null_count() == len(people), "everyone is read"
    for column, key, prefix in (("username", "key_username", "u:"), ("phone", "key_phone", "p:")):
        if column in found:
            assert rows.get_column(key).to_list() == [prefix + p[column] for p in people]
    if "user_id" in found:
        assert rows.get_column("key_user_id").to_list() == ["id:" + p["user_id"] for p in people]
    if "first_name" in found:
        assert [json.loads(d)["first_name"] for d in rows.get_column("user_data")] == [
            p["first_name"] for p in people
        ]
