"""Property tests: rendering customer text never reaches attributes, indexes or formatting."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invite.tasks.templates import VARIABLES, TemplateError, check_template, render

SENTINEL = "SECRET-ATTRIBUTE-VALUE"


class Hostile:
    """A value whose attributes, items and format spec would leak if anything evaluated them."""

    secret = SENTINEL

    def __getitem__(self, _: object) -> str:
        return SENTINEL

    def __format__(self, _: str) -> str:
        return SENTINEL

    def __str__(self) -> str:
        return "plain"


text = st.text(alphabet=string.printable + "{}[]._!:", max_size=200)


@given(text)
def test_rendering_never_evaluates_anything(template: str) -> None:
    values = {name: Hostile() for name in VARIABLES}
    try:
        rendered = render(template, values)
    except TemplateError:
        return
    assert SENTINEL not in rendered


@given(text)
def test_a_checked_template_always_renders(template: str) -> None:
    try:
        check_template(template)
    except TemplateError:
        return
    rendered = render(template, {"username": "alice", "first_name": "Alice"})
    assert isinstance(rendered, str)


@given(st.sampled_from(sorted(VARIABLES)), st.text(max_size=30))
def test_known_placeholders_take_the_value_verbatim(name: str, value: str) -> None:
    assert render(f"<{{{name}}}>", {name: value}) == f"<{value}>"


TRICKS = st.sampled_from(
    [".__class__", ".secret", "[0]", "['secret']", "!r", "!s", ":>20", ":%", "()", "__dict__"]
)


@given(st.sampled_from(sorted(VARIABLES)), TRICKS, st.text(alphabet=string.ascii_letters, max_size=10))
def test_format_tricks_on_a_known_name_are_refused(name: str, trick: str, around: str) -> None:
    template = f"{around}{{{name}{trick}}}{around}"
    with pytest.raises(TemplateError):
        check_template(template)
    with pytest.raises(TemplateError):
        render(template, {n: Hostile() for n in VARIABLES})


@given(st.sampled_from(sorted(VARIABLES)), st.text(alphabet=string.printable + "{}", max_size=40))
def test_a_value_is_never_rendered_again(name: str, value: str) -> None:
    """A person's data holding placeholders (``{username}``, ``{{``) comes out as written."""
    values: dict[str, object] = {n: "OTHER" for n in VARIABLES}
    values[name] = value
    assert render(f"[{{{name}}}]", values) == f"[{value}]"
