"""People from rows: identifiers checked and normalised, names kept for templates.

Vectorised over a polars frame, so a 10 MB file takes a fraction of a second; only phones
go through ``phonenumbers`` one distinct value at a time.

- username: ``@name``, ``t.me/name``, ``https://t.me/name``, ``tg://resolve?domain=name`` →
  ``name``, checked against TDLib's ``is_valid_username``: Latin letters, digits and ``_``,
  starting with a letter, not ending with ``_``, no ``__``, at most 32 characters. TDLib asks
  5 characters only of a username being *set*; collectible (Fragment) usernames have 4, so
  4 is the shortest accepted here. Compared case-insensitively (the key is lower case).
- user id: a positive integer with at most 52 significant bits (the Bot API's bound);
  negative ids are chats and channels, not people.
- phone: E.164 via ``phonenumbers``, numbers without a country code read in the default
  region (RU: ``8 (912) 345-67-89`` → ``+79123456789``).

When a row has several valid identifiers the username wins, then the user id, then the
phone: any account resolves a username, a bare user id only resolves for an account that has
already met the person (it needs their access hash), and a phone needs an imported contact
and the person's privacy settings to allow it. The others stay in ``user_data`` and, with the
keys they make, still catch duplicates and suppressed people.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import phonenumbers
import polars as pl

from invite.audience.schemas import Role

USERNAME_MIN = 4
USERNAME_MAX = 32
USER_ID_MAX = 2**52 - 1
NAME_MAX = 128
VALUE_SHOWN = 100  # characters of a rejected value echoed back in the report
GUESSED_ID_DIGITS = 5  # a column guessed to hold user ids: shorter numbers are counts and row numbers

KEY_COLUMNS = ("key_username", "key_user_id", "key_phone")
IDENTIFIER_COLUMNS = ("username", "user_id", "phone")  # the values behind KEY_COLUMNS, in order
DATA_FIELDS = ("username", "user_id", "phone", "first_name", "last_name")
_TRUE = ["true", "1", "yes", "y", "t", "да"]
_INVISIBLE = r"[\x00\u200b-\u200f\u2060\ufeff]"  # and NUL, which PostgreSQL cannot store
_LINK_PREFIX = r"(?i)^(?:(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|telegram\.dog)/|tg://resolve\?domain=)"
_STR = pl.String


def _clean(expr: pl.Expr) -> pl.Expr:
    """Trimmed text with invisible characters (and NULs) removed; empty → null."""
    text = expr.str.replace_all(_INVISIBLE, "").str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


def _username(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(normalised username or null, reason it is invalid or null)."""
    name = raw.str.replace(_LINK_PREFIX, "").str.replace(r"^@", "").str.replace(r"/?(?:\?.*)?$", "")
    shown = raw.str.slice(0, VALUE_SHOWN)
    length = name.str.len_chars()
    reason = (
        pl.when(name.str.contains(r"[^A-Za-z0-9_]"))
        .then(
            pl.format("'{}' is not a Telegram username: only Latin letters, digits and _ are allowed", shown)
        )
        .when(length < USERNAME_MIN)
        .then(pl.format("username '{}' is too short (at least {} characters)", shown, pl.lit(USERNAME_MIN)))
        .when(length > USERNAME_MAX)
        .then(pl.format("username '{}' is too long (at most {} characters)", shown, pl.lit(USERNAME_MAX)))
        .when(~name.str.contains(r"^[A-Za-z]"))
        .then(pl.format("username '{}' must start with a letter", shown))
        .when(name.str.contains("__"))
        .then(pl.format("username '{}' has two underscores in a row", shown))
        .when(name.str.ends_with("_"))
        .then(pl.format("username '{}' ends with an underscore", shown))
    )
    valid = raw.is_not_null() & reason.is_null()
    return pl.when(valid).then(name), pl.when(raw.is_not_null()).then(reason)


def _user_id(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    number = raw.str.replace(r"\.0+$", "").cast(pl.Int64, strict=False)
    shown = raw.str.slice(0, VALUE_SHOWN)
    reason = (
        pl.when(number.is_null())
        .then(pl.format("'{}' is not a Telegram user id (a positive whole number)", shown))
        .when(number < 0)
        .then(pl.format("'{}' is a chat or channel id, not a person", shown))
        .when((number == 0) | (number > USER_ID_MAX))
        .then(pl.format("'{}' is out of the range of Telegram user ids", shown))
    )
    valid = raw.is_not_null() & reason.is_null()
    return pl.when(valid).then(number.cast(_STR)), pl.when(raw.is_not_null()).then(reason)


def e164(value: str, region: str) -> str | None:
    """The E.164 form of a phone number, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phones(raw: pl.Series, region: str) -> pl.Series:
    """E.164 for each distinct value (null when invalid); phonenumbers is the slow part."""
    distinct = raw.drop_nulls().unique()
    normalised = [e164(value, region) for value in distinct]
    return raw.replace_strict(distinct, pl.Series(normalised, dtype=_STR), default=None)


def _split_identifier(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """A lone identifier told apart by its look: anything but digits and phone punctuation
    is a username; a leading +, phone punctuation or 11+ digits is a phone (user ids have
    at most 10 digits today); other bare digits are a user id."""
    username_like = raw.str.contains(r"[^\d\s().+\-]")
    phone_like = (
        raw.str.starts_with("+") | raw.str.contains(r"\d[\s().\-]+\d") | raw.str.contains(r"^\d{11,}$")
    )
    return (
        pl.when(username_like).then(raw),
        pl.when(~username_like & ~phone_like).then(raw),
        pl.when(~username_like & phone_like).then(raw),
    )


class Kind(StrEnum):
    """What one cell reads as, by the import's own rules (a lone identifier's, so a bare number
    of up to 10 digits is a user id, not a phone)."""

    USERNAME = "username"  # a valid username written as @name or a t.me link
    BARE_USERNAME = "bare_username"  # a valid username written bare, other than a capitalised word
    WORD = "word"  # a capitalised Latin word that is a valid username ("Alice"): a username or a name
    USER_ID = "user_id"  # of at least GUESSED_ID_DIGITS digits
    PHONE = "phone"
    NAME = "name"  # one word of letters in any script, not a username ("Алиса")
    FULL_NAME = "full_name"  # two words or more ("Anna Smith")
    OTHER = "other"


def cell_kinds(frame: pl.DataFrame, region: str) -> list[list[Kind | None]]:
    """Each cell of ``frame`` as the kind it reads as (None when blank), column by column.
    One pass over every cell: the regular expressions are compiled once, not per column."""
    values = pl.concat([frame.get_column(c).cast(_STR) for c in frame.columns]) if frame.width else None
    if values is None or not len(values):
        return [[] for _ in frame.columns]
    raw = pl.DataFrame({"raw": values}).select(_clean(pl.col("raw")).alias("raw"))
    as_username, as_user_id, as_phone = _split_identifier(pl.col("raw"))
    username = _username(as_username)[0].is_not_null()
    user_id = _user_id(as_user_id)[0].str.len_chars() >= GUESSED_ID_DIGITS
    explicit = pl.col("raw").str.contains(_LINK_PREFIX) | pl.col("raw").str.starts_with("@")
    name = pl.col("raw").str.contains(r"^[^\W\d_]{2,}(?:[\s'’.\-]+[^\W\d_]+)*\.?$")
    phone = _phones(raw.select(as_phone.alias("p")).get_column("p"), region).is_not_null()
    kind = (
        pl.when(pl.col("raw").is_null())
        .then(None)
        .when(username & explicit)
        .then(pl.lit(Kind.USERNAME.value))
        .when(username & pl.col("raw").str.contains(r"^[A-Z][a-z]+$"))
        .then(pl.lit(Kind.WORD.value))
        .when(username)
        .then(pl.lit(Kind.BARE_USERNAME.value))
        .when(user_id)
        .then(pl.lit(Kind.USER_ID.value))
        .when(pl.lit(phone))
        .then(pl.lit(Kind.PHONE.value))
        .when(name & pl.col("raw").str.contains(r"\s"))
        .then(pl.lit(Kind.FULL_NAME.value))
        .when(name)
        .then(pl.lit(Kind.NAME.value))
        .otherwise(pl.lit(Kind.OTHER.value))
    )
    read = [None if k is None else Kind(k) for k in raw.select(kind).to_series().to_list()]
    return [read[i * frame.height : (i + 1) * frame.height] for i in range(frame.width)]


def _column(frame: pl.DataFrame, columns: Mapping[Role, str], role: Role) -> pl.Expr:
    name = columns.get(role)
    return _clean(pl.col(name).cast(_STR)) if name is not None else pl.lit(None, dtype=_STR)


def _json_object(fields: tuple[str, ...]) -> pl.Expr:
    """A JSON object of the non-null ``fields`` (each member encoded, and so escaped, by polars)."""
    members = [
        pl.when(pl.col(name).is_not_null()).then(
            pl.struct(name).struct.json_encode().str.slice(1).str.head(-1)
        )
        for name in fields
    ]
    return pl.lit("{") + pl.concat_str(members, separator=",", ignore_nulls=True) + pl.lit("}")


def people(frame: pl.DataFrame, columns: Mapping[Role, str], region: str) -> pl.DataFrame:
    """One row per input row (``frame`` carries a ``row`` number column).

    Columns out: ``row``, ``kind``, ``value``, ``key`` (the chosen identifier, as
    ``Target.kind``/``.value``/``.key``), ``key_username``/``key_user_id``/``key_phone`` (every
    valid identifier's key) with ``username``/``user_id``/``phone`` (their values), ``user_data`` (JSON text), ``shown`` (the identifier as written),
    ``code`` and ``reason`` (null when the row is fine; ``invalid``, ``no_identifier`` or ``bot``).
    """
    lone_username, lone_user_id, lone_phone = _split_identifier(_column(frame, columns, Role.IDENTIFIER))
    raw = frame.select(
        "row",
        pl.coalesce(_column(frame, columns, Role.USERNAME), lone_username).alias("raw_username"),
        pl.coalesce(_column(frame, columns, Role.USER_ID), lone_user_id).alias("raw_user_id"),
        pl.coalesce(_column(frame, columns, Role.PHONE), lone_phone).alias("raw_phone"),
        _column(frame, columns, Role.FIRST_NAME).str.slice(0, NAME_MAX).alias("first_name"),
        _column(frame, columns, Role.LAST_NAME).str.slice(0, NAME_MAX).alias("last_name"),
        _column(frame, columns, Role.FULL_NAME).str.slice(0, NAME_MAX * 2).alias("full_name"),
        (
            _column(frame, columns, Role.IS_BOT).str.to_lowercase().is_in(_TRUE)
            | (_column(frame, columns, Role.USER_TYPE).str.to_lowercase() == "bot")
        )
        .fill_null(False)
        .alias("bot"),
    )
    username, username_reason = _username(pl.col("raw_username"))
    user_id, user_id_reason = _user_id(pl.col("raw_user_id"))
    phone = pl.Series("phone", _phones(raw.get_column("raw_phone"), region))
    split = pl.col("full_name").str.splitn(" ", 2)
    checked = raw.with_columns(
        username.alias("username"),
        user_id.alias("user_id"),
        phone,
        username_reason.alias("username_reason"),
        user_id_reason.alias("user_id_reason"),
        pl.when(pl.col("raw_phone").is_not_null() & phone.is_null())
        .then(pl.format("'{}' is not a valid phone number", pl.col("raw_phone").str.slice(0, VALUE_SHOWN)))
        .alias("phone_reason"),
        pl.coalesce("first_name", split.struct.field("field_0")).alias("first_name"),
        pl.when(pl.col("first_name").is_null() & pl.col("last_name").is_null())
        .then(split.struct.field("field_1").str.strip_chars())
        .otherwise(pl.col("last_name"))
        .alias("last_name"),
    )
    kind = (
        pl.when(pl.col("username").is_not_null())
        .then(pl.lit("username"))
        .when(pl.col("user_id").is_not_null())
        .then(pl.lit("user_id"))
        .when(pl.col("phone").is_not_null())
        .then(pl.lit("phone"))
    )
    keyed = checked.with_columns(
        kind.alias("kind"),
        pl.coalesce("username", "user_id", "phone").alias("value"),
        ("u:" + pl.col("username").str.to_lowercase()).alias("key_username"),
        ("id:" + pl.col("user_id")).alias("key_user_id"),
        ("p:" + pl.col("phone")).alias("key_phone"),
        pl.coalesce("raw_username", "raw_user_id", "raw_phone").str.slice(0, VALUE_SHOWN).alias("shown"),
    )
    any_raw = pl.any_horizontal(pl.col("raw_username", "raw_user_id", "raw_phone").is_not_null())
    return keyed.select(
        "row",
        "kind",
        "value",
        pl.coalesce(KEY_COLUMNS).alias("key"),
        *KEY_COLUMNS,
        *IDENTIFIER_COLUMNS,
        _json_object(DATA_FIELDS).alias("user_data"),
        "shown",
        pl.when(pl.col("kind").is_null() & any_raw)
        .then(pl.lit("invalid"))
        .when(pl.col("kind").is_null())
        .then(pl.lit("no_identifier"))
        .when(pl.col("bot"))
        .then(pl.lit("bot"))
        .alias("code"),
        pl.when(pl.col("kind").is_null() & any_raw)
        .then(pl.coalesce("username_reason", "user_id_reason", "phone_reason"))
        .when(pl.col("kind").is_null())
        .then(pl.lit("no username, user id or phone in this row"))
        .when(pl.col("bot"))
        .then(pl.format("'{}' is a bot", pl.col("value")))
        .alias("reason"),
    )
