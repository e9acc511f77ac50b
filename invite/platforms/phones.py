"""How a phone number shows in an account's label: masked, by the accounts provider and by GET /accounts.

Beside the port, so that the Integration Service client and the accounts feature share the one
rule without the feature importing the adapter.
"""

from __future__ import annotations

import re


def mask_phone(phone: str) -> str:
    """``+79123456789`` → ``+7******789``: enough to tell accounts apart, not to dial."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 5:
        return "*" * len(digits)
    plus = "+" if phone.lstrip().startswith("+") else ""
    return f"{plus}{digits[0]}{'*' * (len(digits) - 4)}{digits[-3:]}"
