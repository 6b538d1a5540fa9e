"""Masking of reporters' personal data (name, phone) wherever a message is kept outside the incident record."""

from __future__ import annotations

import json
import re

import pydantic_core

# mainland mobile numbers and landlines with an area code; a digit run after a decimal point
# is a coordinate, not a phone number
_PHONE = re.compile(r"(?<![\d.])(\+?86[- ]?)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")
# a "name" member in text that is not (or not entirely) JSON: the value up to its closing quote
_NAME = re.compile(r'("name"\s*:\s*")((?:[^"\\]|\\.)+)')
# larger messages are masked as text only: parsing them whole is not worth it for an excerpt
PARSED_UP_TO = 256 * 1024
# masked text reaches this far beyond the excerpt, so that a number cut by the excerpt's end is masked whole
_MARGIN = 64


def mask_phone(text: str) -> str:
    """Keep the last four digits, which is what a duty officer reads back to a caller."""
    return _PHONE.sub(lambda m: "*" * (len(m.group(2)) - 4) + m.group(2)[-4:], text)


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(1, len(name) - 1) if name else name


def mask_personal_data(raw: str) -> tuple[str, bool]:
    """`raw` with the reporter's name and phone masked; the flag says whether anything was changed."""
    masked = raw
    doc = _parsed(raw)
    if isinstance(doc, dict) and isinstance(doc.get("reporter"), dict):
        doc["reporter"] = _masked_reporter(doc["reporter"])
        masked = json.dumps(doc, ensure_ascii=False)
    masked = _NAME.sub(lambda m: m.group(1) + mask_name(m.group(2)), mask_phone(masked))
    return masked, masked != raw


def mask_bytes(value: bytes, window: int) -> tuple[bytes, bool]:
    """The first `window` bytes of `value` (and a little more) masked as mask_personal_data does, whatever the
    bytes are: invalid UTF-8 stays exactly as it was around what is masked. The flag says whether anything was
    masked; the rest of `value` is not looked at (it is not kept)."""
    if len(value) <= PARSED_UP_TO:
        text = value.decode("utf-8", "surrogateescape")
        masked, changed = mask_personal_data(text)
        if changed:
            return _encoded(masked), True
    head = value[:window + _MARGIN].decode("utf-8", "surrogateescape")
    masked = _NAME.sub(lambda m: m.group(1) + mask_name(m.group(2)), mask_phone(head))
    return _encoded(masked), masked != head


def _parsed(raw: str):
    try:
        # bounded nesting (pydantic-core refuses past 200 levels with a ValueError, where json.loads recurses)
        return pydantic_core.from_json(raw.encode("utf-8", "surrogateescape"))
    except (ValueError, UnicodeEncodeError):
        return None


def _masked_reporter(reporter: dict) -> dict:
    masked = dict(reporter)
    if "name" in masked:
        masked["name"] = _masked_value(masked["name"], mask_name)
    if masked.get("phone") is not None:
        masked["phone"] = _masked_value(masked["phone"], mask_phone)
    return masked


def _masked_value(value, mask):
    """Every string in `value` masked, however it is given (a string, a number, a list, an object)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [_masked_value(v, mask) for v in value]
    if isinstance(value, dict):
        return {k: _masked_value(v, mask) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return mask(str(value))
    return value


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
