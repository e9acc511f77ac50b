"""Message templates: hostile customer text is refused or rendered literally, never evaluated."""

from __future__ import annotations

import pytest

from invite.tasks.templates import TemplateError, check_template, has_link, render

PERSON = {"username": "alice", "first_name": "Alice", "last_name": "Liddell", "user_id": 42}


class Leaky:
    """Any attribute, item or format spec reaching this value would show SECRET."""

    secret = "SECRET"

    def __getitem__(self, _: object) -> str:
        return "SECRET"

    def __format__(self, _: str) -> str:
        return "SECRET"

    def __str__(self) -> str:
        return "leaky"


@pytest.mark.parametrize(
    "template",
    [
        "{0.__class__}",
        "{username.__dict__}",
        "{username.__class__.__mro__}",
        "{x[0]}",
        "{username[0]}",
        "{username!r}",
        "{username!s:>10}",
        "{username:>10}",
        "{}",
        "{0}",
        "{ username }",
        "{Username}",
        "{user\nname}",
    ],
)
def test_anything_but_a_bare_known_name_is_refused(template: str) -> None:
    with pytest.raises(TemplateError, match="unknown variable"):
        check_template(template)
    with pytest.raises(TemplateError):
        render(template, {"username": Leaky(), "x": Leaky()})


@pytest.mark.parametrize(
    ("template", "position"),
    [
        ("{username", 0),
        ("Hi {first_name", 3),
        ("}", 0),
        ("Hi }{", 3),
        ("{{username}", 10),
        ("a{b{c}", 1),
        ("{username:{first_name}}", 0),  # nesting is not a thing: the outer brace is unmatched
        ("{{{username}}", 12),
    ],
)
def test_unbalanced_braces_name_the_position(template: str, position: int) -> None:
    with pytest.raises(TemplateError, match=f"at position {position}"):
        check_template(template)


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{{username}}", "{username}"),
        ("{{{username}}}", "{alice}"),
        ("{{0.__class__}}", "{0.__class__}"),
        ("Hi {first_name} {last_name}!", "Hi Alice Liddell!"),
        ("{full_name}", "Alice Liddell"),
        ("{phone}", ""),  # a missing value renders empty
        ("{user_id}", "42"),
        ("", ""),
    ],
)
def test_placeholders_and_escaped_braces(template: str, rendered: str) -> None:
    check_template(template)
    assert render(template, PERSON) == rendered


def test_values_are_inserted_verbatim_and_never_expanded_again() -> None:
    values = {"username": "{first_name}", "first_name": "{0.__class__}", "last_name": Leaky()}
    assert render("{username}|{first_name}|{last_name}", values) == "{first_name}|{0.__class__}|leaky"


def test_very_long_templates_are_handled_and_errors_stay_short() -> None:
    long_ok = "Hi {first_name}! " * 20_000
    check_template(long_ok)
    assert render(long_ok, PERSON).count("Alice") == 20_000
    assert render("{{" * 50_000, {}) == "{" * 50_000
    with pytest.raises(TemplateError) as caught:
        check_template("{" + "a" * 100_000 + "}")
    assert len(str(caught.value)) < 200
    with pytest.raises(TemplateError, match="unmatched"):
        check_template("{" * 100_001)


def test_links_are_recognised() -> None:
    assert has_link("join https://t.me/mygroup")
    assert has_link("see example.com")
    assert not has_link("Hello {first_name}, nice to meet you")
