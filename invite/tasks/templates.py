"""Message templates: ``{name}`` placeholders filled from a person's data, nothing more.

No ``str.format``: a template is customer text, and format() would let ``{0.__class__}``
or ``{x[0]}`` reach attributes and indexes. Here a placeholder is a bare known name, and
``{{`` / ``}}`` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLES = frozenset({"username", "first_name", "last_name", "full_name", "user_id", "phone", "invite_link"})
LINK_VARIABLE = "invite_link"  # an invite task's one-use link (settings.privacy_fallback), nowhere else

_SHOWN = 40  # characters of an unknown placeholder quoted in the error
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_LINK = re.compile(
    r"(?:https?://|www\.|\bt\.me/|\btelegram\.me/|\b[a-z0-9-]+\.(?:com|ru|net|org|io|me)\b)", re.I
)


class TemplateError(ValueError):
    """The template is malformed or names an unknown variable."""


def check_template(template: str) -> None:
    """Raise TemplateError unless every placeholder is a known variable."""
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise TemplateError(
                f"unmatched '{token}' at position {match.start()}; write '{token * 2}' for a brace"
            )
        if name not in VARIABLES:
            known = ", ".join(sorted(VARIABLES))
            shown = name if len(name) <= _SHOWN else name[:_SHOWN] + "…"  # never echo a megabyte back
            raise TemplateError(f"unknown variable {{{shown}}}; known: {known}")


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill placeholders from ``values``; a missing value renders as an empty string."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name is None or name not in VARIABLES:
            raise TemplateError(f"bad placeholder {token!r}")
        value = values.get(name)
        if value is None and name == "full_name":
            value = " ".join(str(v) for v in (values.get("first_name"), values.get("last_name")) if v)
        return "" if value is None else str(value)

    return _TOKEN.sub(fill, template)


def names(template: str) -> set[str]:
    """The variables a (checked) template uses."""
    return {m.group(1) for m in _TOKEN.finditer(template) if m.group(1)}


def has_link(text: str) -> bool:
    """Telegram treats messages with links more strictly (a lower daily quota)."""
    return _LINK.search(text) is not None
