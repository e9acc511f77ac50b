"""Identifiers checked and normalised: Telegram username rules, user ids, phones, names, bots."""

from __future__ import annotations

from typing import Any

import msgspec
import polars as pl
import pytest

from invite.audience.columns import Role
from invite.audience.normalise import people
from invite.platforms.base import Target, TargetKind


def run(columns: dict[Role, list[str | None]], region: str = "RU") -> list[dict[str, Any]]:
    frame = pl.DataFrame({role.value: values for role, values in columns.items()}, schema_overrides=None)
    frame = (
        frame.select(pl.all().cast(pl.String))
        .with_row_index("row", offset=1)
        .with_columns(pl.col("row").cast(pl.Int64))
    )
    return people(frame, {role: role.value for role in columns}, region).to_dicts()


def one(role: Role, value: str | None) -> dict[str, Any]:
    return run({role: [value]})[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice_b", "alice_b"),
        ("@Alice_B", "Alice_B"),
        ("t.me/alice_b", "alice_b"),
        ("https://t.me/alice_b", "alice_b"),
        ("http://telegram.me/alice_b/", "alice_b"),
        ("https://t.me/alice_b?start=1", "alice_b"),
        ("tg://resolve?domain=alice_b", "alice_b"),
        ("  @alice_b\u200b ", "alice_b"),
        ("jack", "jack"),  # collectible 4-character usernames exist
        ("a" * 32, "a" * 32),
        ("a1_b2_c3", "a1_b2_c3"),
    ],
)
def test_valid_usernames_are_normalised(raw: str, expected: str) -> None:
    row = one(Role.USERNAME, raw)
    assert row["code"] is None
    assert (row["kind"], row["value"], row["key"]) == ("username", expected, f"u:{expected.lower()}")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc", "too short"),
        ("a" * 33, "too long"),
        ("1alice", "must start with a letter"),
        ("_alice", "must start with a letter"),
        ("ali__ce", "two underscores in a row"),
        ("alice_", "ends with an underscore"),
        ("alice.b", "only Latin letters, digits and _"),
        ("алиса_б", "only Latin letters, digits and _"),  # Cyrillic look-alikes
        ("https://t.me/+AbCdEfGh", "only Latin letters, digits and _"),  # an invite link, not a person
        ("https://t.me/joinchat/AbCdEf", "only Latin letters, digits and _"),
    ],
)
def test_invalid_usernames_are_rejected_with_the_rule_they_break(raw: str, reason: str) -> None:
    row = one(Role.USERNAME, raw)
    assert row["code"] == "invalid"
    assert reason in row["reason"]
    assert row["key"] is None


def test_usernames_compare_case_insensitively() -> None:
    rows = run({Role.USERNAME: ["@Alice_B", "alice_b", "https://t.me/ALICE_B"]})
    assert {r["key"] for r in rows} == {"u:alice_b"}


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("123456789", "123456789"),
        ("00042", "42"),
        ("123456789.0", "123456789"),
        (str(2**52 - 1), str(2**52 - 1)),
    ],
)
def test_user_ids(raw: str, value: str) -> None:
    row = one(Role.USER_ID, raw)
    assert (row["code"], row["kind"], row["key"]) == (None, "user_id", f"id:{value}")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("-1001234567890", "chat or channel id"),
        ("0", "out of the range"),
        (str(2**52), "out of the range"),
        ("12a", "not a Telegram user id"),
        ("1e9", "not a Telegram user id"),
    ],
)
def test_bad_user_ids(raw: str, reason: str) -> None:
    row = one(Role.USER_ID, raw)
    assert row["code"] == "invalid"
    assert reason in row["reason"]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("8 (912) 345-67-89", "+79123456789"),
        ("+7 912 345 67 89", "+79123456789"),
        ("79123456789", "+79123456789"),
        ("9123456789", "+79123456789"),
        ("+1 650 253 0000", "+16502530000"),
        ("+380 50 123 4567", "+380501234567"),
    ],
)
def test_phones_become_e164_in_the_default_region(raw: str, e164: str) -> None:
    row = one(Role.PHONE, raw)
    assert (row["code"], row["kind"], row["value"], row["key"]) == (None, "phone", e164, f"p:{e164}")


def test_the_default_region_is_a_setting() -> None:
    assert run({Role.PHONE: ["(650) 253-0000"]}, region="US")[0]["value"] == "+16502530000"
    assert run({Role.PHONE: ["(650) 253-0000"]}, region="RU")[0]["code"] == "invalid"


@pytest.mark.parametrize("raw", ["+7 912 345 67 8", "123", "phone please"])
def test_bad_phones(raw: str) -> None:
    row = one(Role.PHONE, raw)
    assert row["code"] == "invalid"
    assert "not a valid phone number" in row["reason"]


def test_username_wins_over_user_id_over_phone_and_all_keys_are_kept() -> None:
    rows = run(
        {
            Role.USERNAME: ["alice_b", None, None, "bad name"],
            Role.USER_ID: ["42", "43", None, "44"],
            Role.PHONE: ["+79123456789", "+79123456780", "+79123456781", None],
        }
    )
    assert [(r["kind"], r["value"]) for r in rows] == [
        ("username", "alice_b"),
        ("user_id", "43"),
        ("phone", "+79123456781"),
        ("user_id", "44"),  # a broken username does not lose a row that has a good id
    ]
    assert (rows[0]["key_username"], rows[0]["key_user_id"], rows[0]["key_phone"]) == (
        "u:alice_b",
        "id:42",
        "p:+79123456789",
    )


def test_a_lone_identifier_column_is_told_apart_by_value() -> None:
    rows = run(
        {Role.IDENTIFIER: ["@alice_b", "123456789", "+7 912 345-67-89", "79123456789", "t.me/bob_the_b", "x"]}
    )
    assert [(r["kind"], r["value"]) for r in rows[:5]] == [
        ("username", "alice_b"),
        ("user_id", "123456789"),
        ("phone", "+79123456789"),
        ("phone", "+79123456789"),  # 11 digits: longer than any user id today
        ("username", "bob_the_b"),
    ]
    assert rows[5]["code"] == "invalid"


def test_rows_without_an_identifier_and_bots() -> None:
    rows = run(
        {
            Role.USERNAME: [None, "helper_bot", "robot_like", "some_user"],
            Role.FIRST_NAME: ["Only a name", None, None, None],
            Role.IS_BOT: [None, "true", "false", None],
            Role.USER_TYPE: [None, None, None, "bot"],
        }
    )
    assert [r["code"] for r in rows] == ["no_identifier", "bot", None, "bot"]
    assert rows[0]["reason"] == "no username, user id or phone in this row"


def test_names_are_kept_for_templates_and_a_full_name_is_split() -> None:
    rows = run(
        {
            Role.USERNAME: ["alice_b", "bob_the_b"],
            Role.USER_ID: ["42", None],
            Role.FULL_NAME: ["Алиса Петрова-Водкина", "Bob"],
        }
    )
    data = [msgspec.json.decode(r["user_data"]) for r in rows]
    assert data[0] == {
        "username": "alice_b",
        "user_id": "42",
        "first_name": "Алиса",
        "last_name": "Петрова-Водкина",
    }
    assert data[1] == {"username": "bob_the_b", "first_name": "Bob"}  # nulls are left out


def test_first_and_last_name_columns_win_over_a_full_name() -> None:
    row = run({Role.USERNAME: ["alice_b"], Role.FIRST_NAME: ["Alice"], Role.FULL_NAME: ["Something Else"]})[0]
    data = msgspec.json.decode(row["user_data"])
    assert data == {"username": "alice_b", "first_name": "Alice"}


@pytest.mark.parametrize(
    ("role", "raw"),
    [(Role.USERNAME, "@Alice_B"), (Role.USER_ID, "777"), (Role.PHONE, "8 912 345 67 89")],
)
def test_keys_match_the_platform_port(role: Role, raw: str) -> None:
    """The vectorised key is exactly Target.key, which the engine and the schema rely on."""
    row = one(role, raw)
    target = Target(TargetKind(row["kind"]), row["value"])
    assert row["key"] == target.key
    assert Target.from_key(row["key"]).key == row["key"]
