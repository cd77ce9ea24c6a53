"""Obvious personal data out of free text before it is stored: emails and phone numbers."""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A phone number: an optional +country code, then 7 to 15 digits in groups split by spaces, dots,
# dashes or parentheses ("(555) 123-4567", "+44 20 7946 0958", "555.123.4567", "5551234567").
# Doses and years ("50 mg", "2024") have too few digits to match.
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d(?:[\s.-]?\d){6,14}(?!\w)"
)

EMAIL_MARK = "[email]"
PHONE_MARK = "[phone]"


def redact(text: str) -> str:
    """`text` with every email address and phone number replaced by a marker."""
    text = EMAIL.sub(EMAIL_MARK, text)
    return PHONE.sub(PHONE_MARK, text)
