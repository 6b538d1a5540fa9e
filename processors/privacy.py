"""Masking of reporters' personal data (name, phone) wherever a message is kept outside the incident record."""

from __future__ import annotations

import json
import re

# mainland mobile numbers and landlines with an area code; a digit run after a decimal point
# is a coordinate, not a phone number
_PHONE = re.compile(r"(?<![\d.])(\+?86[- ]?)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")


def mask_phone(text: str) -> str:
    """Keep the last four digits, which is what a duty officer reads back to a caller."""
    return _PHONE.sub(lambda m: "*" * (len(m.group(2)) - 4) + m.group(2)[-4:], text)


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(1, len(name) - 1) if name else name


def mask_personal_data(raw: str) -> tuple[str, bool]:
    """`raw` with the reporter's name and phone masked; the flag says whether anything was changed."""
    masked = raw
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("reporter"), dict):
        reporter = doc["reporter"]
        if isinstance(reporter.get("name"), str):
            reporter["name"] = mask_name(reporter["name"])
        if reporter.get("phone") is not None:
            reporter["phone"] = mask_phone(str(reporter["phone"]))
        masked = json.dumps(doc, ensure_ascii=False)
    masked = mask_phone(masked)
    return masked, masked != raw
