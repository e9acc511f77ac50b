"""Column detection: English and Russian headers, known exports, title rows, a mapping."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pytest

from invite.audience.columns import Role, detect, role_of, word_role
from invite.kernel.problems import Problem


def grid(*rows: Sequence[str | None]) -> pl.DataFrame:
    width = max(len(r) for r in rows)
    columns = {f"c{i}": [r[i] if i < len(r) else None for r in rows] for i in range(width)}
    return pl.DataFrame(columns, schema={name: pl.String for name in columns})


def labels(frame: pl.DataFrame, **kwargs: object) -> dict[str, str]:
    layout = detect(frame, named=False, region="RU", **kwargs)  # type: ignore[arg-type]
    return {role.value: label for role, label in layout.labels.items()}


def test_english_headers() -> None:
    found = labels(
        grid(["Username", "User ID", "Phone Number", "First Name", "Last Name"], ["a", "1", "2", "3", "4"])
    )
    assert found == {
        "username": "Username",
        "user_id": "User ID",
        "phone": "Phone Number",
        "first_name": "First Name",
        "last_name": "Last Name",
    }


def test_russian_headers() -> None:
    found = labels(grid(["Логин", "ID пользователя", "Телефон", "Имя", "Фамилия"], ["a", "1", "2", "3", "4"]))
    assert found == {
        "username": "Логин",
        "user_id": "ID пользователя",
        "phone": "Телефон",
        "first_name": "Имя",
        "last_name": "Фамилия",
    }
    assert labels(grid(["Ник", "Номер"], ["a", "1"])) == {"username": "Ник", "phone": "Номер"}


def test_a_title_row_and_blank_rows_above_the_header() -> None:
    layout = detect(
        grid(
            ["Участники чата «Клуб»", None],
            [None, None],
            ["username", "телефон"],
            ["alice_b", "+79123456789"],
        ),
        named=False,
        region="RU",
    )
    assert (layout.header_row, layout.data_start) == (3, 3)
    assert layout.columns == {Role.USERNAME: "c0", Role.PHONE: "c1"}


def test_the_parsing_service_csv_export_uses_platform_id_not_its_row_id() -> None:
    header = [
        "author_phone",
        "created_at",
        "display_name",
        "id",
        "platform",
        "platform_id",
        "task_id",
        "username",
    ]
    header += [
        "specific_user_id",
        "specific_first_name",
        "specific_last_name",
        "specific_is_bot",
        "specific_user_type",
    ]
    found = labels(grid(header, ["x"] * len(header)))
    assert found == {
        "phone": "author_phone",
        "full_name": "display_name",
        "user_id": "platform_id",
        "username": "username",
        "first_name": "specific_first_name",
        "last_name": "specific_last_name",
        "is_bot": "specific_is_bot",
        "user_type": "specific_user_type",
    }


def test_the_parsing_service_xlsx_export() -> None:
    header = ["ID", "Task ID", "Platform", "Platform ID", "Username", "Display Name", "Phone", "Created At"]
    header += ["Extra user_id", "Extra first_name", "Extra is_bot"]
    found = labels(grid(header, ["x"] * len(header)))
    assert found["user_id"] == "Platform ID"
    assert (found["username"], found["phone"], found["first_name"], found["is_bot"]) == (
        "Username",
        "Phone",
        "Extra first_name",
        "Extra is_bot",
    )


def test_an_export_without_platform_id_still_never_reads_its_row_id_as_a_user() -> None:
    found = labels(grid(["id", "task_id", "platform", "username"], ["1", "t", "telegram", "a"]))
    assert found == {"username": "username"}


def test_a_plain_id_column_is_a_user_id_elsewhere() -> None:
    assert labels(grid(["id", "name"], ["42", "Alice"])) == {"user_id": "id", "full_name": "name"}


def test_telegram_member_scraper_export() -> None:
    found = labels(grid(["username", "user id", "access hash", "name", "group", "group id"], ["a"] * 6))
    assert found == {"username": "username", "user_id": "user id", "full_name": "name"}


def test_json_keys_with_nested_platform_data() -> None:
    frame = pl.DataFrame(
        {
            "id": ["1"],
            "platform_id": ["42"],
            "username": ["a"],
            "platform_specific_data.first_name": ["A"],
            "platform_specific_data.is_bot": ["false"],
        }
    )
    layout = detect(frame, named=True, region="RU")
    assert layout.header_row is None
    assert layout.columns == {
        Role.USER_ID: "platform_id",
        Role.USERNAME: "username",
        Role.FIRST_NAME: "platform_specific_data.first_name",
        Role.IS_BOT: "platform_specific_data.is_bot",
    }


def test_no_header_means_a_lone_column_of_identifiers() -> None:
    layout = detect(grid([None], ["@alice_b"], ["12345"]), named=False, region="RU")
    assert (layout.columns, layout.labels, layout.header_row, layout.data_start) == (
        {Role.IDENTIFIER: "c0"},
        {Role.IDENTIFIER: "column 1"},
        None,
        0,
    )


def test_a_header_without_any_identifier_column_is_422() -> None:
    with pytest.raises(Problem) as caught:
        detect(grid(["Имя", "Фамилия"], ["Алиса", "Петрова"]), named=False, region="RU")
    assert caught.value.status == 422
    assert caught.value.params[0].name == "file"


def test_a_mapping_overrides_detection_role_by_role() -> None:
    frame = grid(["Контакт", "Логин", "Имя"], ["alice_b", "other", "Алиса"])
    layout = detect(frame, named=False, region="RU", mapping={"username": "Контакт", "first_name": None})
    assert layout.columns == {Role.USERNAME: "c0"}
    assert layout.header_row == 1


def test_a_mapping_finds_a_header_detection_would_not() -> None:
    frame = grid(["Список", None], ["Кто", "Как звать"], ["alice_b", "Алиса"])
    layout = detect(frame, named=False, region="RU", mapping={"username": "кто", "first_name": "Как звать"})
    assert layout.header_row == 2
    assert layout.columns == {Role.USERNAME: "c0", Role.FIRST_NAME: "c1"}


@pytest.mark.parametrize(
    ("mapping", "field", "reason"),
    [
        ({"username": "Нет такой"}, "mapping.username", "no column 'Нет такой'"),
        ({"nickname": "Логин"}, "mapping.nickname", "unknown role"),
    ],
)
def test_a_bad_mapping_names_the_field(mapping: dict[str, str | None], field: str, reason: str) -> None:
    with pytest.raises(Problem) as caught:
        detect(grid(["Логин"], ["alice_b"]), named=True, region="RU", mapping=mapping)
    assert caught.value.status == 422
    assert caught.value.params[0].name == field
    assert reason in caught.value.params[0].reason


@pytest.mark.parametrize("role", list(Role))
def test_every_role_name_is_a_header_never_a_person(role: Role) -> None:
    """The docs and the mapping name roles (``identifier``, ``user_id``, …): a file headed with
    one reads it as its header."""
    assert role_of(role.value) == (role, 0)
    layout = detect(grid([role.value, "username"], ["x", "@alice_b"]), named=False, region="RU")
    assert (layout.header_row, layout.labels[role]) == (1, role.value)


def test_a_lone_identifier_header_names_the_lone_column() -> None:
    layout = detect(grid(["identifier"], ["@alice_b"], ["12345678"]), named=False, region="RU")
    assert (layout.columns, layout.labels, layout.header_row) == (
        {Role.IDENTIFIER: "c0"},
        {Role.IDENTIFIER: "identifier"},
        1,
    )


def test_a_row_of_known_headers_alone_is_a_header() -> None:
    """``Имя`` alone names no identifying column, yet it is a header, not a first data row."""
    with pytest.raises(Problem) as caught:
        detect(grid(["Имя"], ["Алиса"]), named=False, region="RU")
    assert caught.value.title == "No identifier column"


def guesses(frame: pl.DataFrame, named: bool = False) -> dict[str, tuple[str, str]]:
    """role → (column label, why) of the roles detection guessed."""
    layout = detect(frame, named=named, region="RU")
    return {role.value: (layout.labels[role], why) for role, why in layout.guessed.items()}


NICKS = ["@alice_b", "t.me/bob_the_b", "https://t.me/carol_c", "@dave_d", "ed_e_e"]


def test_a_header_holding_a_known_word_and_usernames_is_guessed_and_says_why() -> None:
    """The customer's file that came in with 60 people rejected: ``Ник в Telegram``."""
    frame = grid(["Ник в Telegram", "Имя"], *[[nick, "Алиса"] for nick in NICKS])
    layout = detect(frame, named=False, region="RU")
    assert layout.columns == {Role.USERNAME: "c0", Role.FIRST_NAME: "c1"}
    assert layout.guessed == {
        Role.USERNAME: "header 'Ник в Telegram' contains 'ник'; 5 of 5 values are usernames or t.me links"
    }


@pytest.mark.parametrize(
    ("header", "role"),
    [
        ("Номер телефона клиента", Role.PHONE),
        ("Телефон в Telegram", Role.PHONE),
        ("Phone (mobile)", Role.PHONE),
        ("ID в Telegram", Role.USER_ID),
        ("Telegram user ID клиента", Role.USER_ID),
        ("Логин в телеграме", Role.USERNAME),
        ("Профиль TG", Role.USERNAME),
    ],
)
def test_a_header_containing_a_known_word_names_its_role(header: str, role: Role) -> None:
    label, why = guesses(grid([header, "x"], ["", "y"]))[role.value]
    assert (label, why.startswith(f"header {header!r} contains ")) == (header, True)


def test_group_and_task_ids_are_not_user_ids() -> None:
    assert (word_role("group id"), word_role("task ID"), word_role("ID заказа")) == (None, None, None)


def test_an_unknown_header_maps_by_its_values() -> None:
    rows = [["@alice_b", "+7 912 345-67-89", "Алиса Петрова"], ["t.me/bob_the_b", "+79123456780", "Борис Б"]]
    found = guesses(grid(["Контакт", "Связь", "Кто"], *rows))
    assert found == {
        "username": ("Контакт", "2 of 2 values are usernames or t.me links"),
        "phone": ("Связь", "2 of 2 values are phone numbers"),
        "full_name": ("Кто", "2 of 2 values are names"),
    }


def test_values_win_over_a_header_word() -> None:
    found = guesses(grid(["Telegram контакт", "username"], ["+79123456789", "a_person"]))
    assert found == {"phone": ("Telegram контакт", "1 of 1 values are phone numbers")}


def test_order_numbers_beside_a_named_identifier_are_not_a_second_key() -> None:
    """Bare numbers read as user ids only when no header names an identifying column."""
    rows = [["alice_b", "10000001"], ["bob_the_b", "10000002"]]
    assert guesses(grid(["username", "Заказ"], *rows)) == {}
    assert guesses(grid(["Кто", "Заказ"], *rows)) == {
        "username": ("Кто", "2 of 2 values are usernames or t.me links"),
        "user_id": ("Заказ", "2 of 2 values are Telegram user ids"),
    }


def test_a_headerless_sheet_maps_its_columns_by_their_values() -> None:
    layout = detect(
        grid(["Алиса Петрова", "@alice_b", "+79123456789"], ["Борис Борисов", "@bob_the_b", ""]),
        named=False,
        region="RU",
    )
    assert (layout.header_row, layout.columns) == (
        None,
        {Role.FULL_NAME: "c0", Role.USERNAME: "c1", Role.PHONE: "c2"},
    )
    assert layout.labels[Role.PHONE] == "column 3"


def test_a_title_or_a_data_row_with_a_known_word_is_not_the_header() -> None:
    titled = detect(
        grid(["Telegram: участники клуба", None], ["Контакт", "Кто"], ["@alice_b", "Алиса"]),
        named=False,
        region="RU",
    )
    assert (titled.header_row, titled.columns[Role.USERNAME]) == (2, "c0")
    data = detect(grid(["Иван Телефонов", "+79123456789"]), named=False, region="RU")
    assert (data.header_row, data.columns) == (None, {Role.FULL_NAME: "c0", Role.PHONE: "c1"})


def test_json_keys_are_guessed_like_headers() -> None:
    frame = pl.DataFrame({"tg_ник": ["@alice_b"], "note": ["called on 5 May"]})
    assert guesses(frame, named=True) == {
        "username": ("tg_ник", "header 'tg_ник' contains 'ник'; 1 of 1 values are usernames or t.me links")
    }
