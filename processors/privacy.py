"""Masking of reporters' personal data (name, phone, any contact) wherever a message is kept outside the incident
record: dead-letter excerpts and log lines.

A record that is refused is often refused because it is broken, so masking cannot rely on parsing it. It reads the
text as a stream of JSON-like tokens instead (strings in double or single quotes, numbers, brackets, colons), which
needs no valid JSON, no complete record and no nesting limit, and masks:
- every value under a personal member (`reporter`, `name`, `phone`, … — PERSONAL_KEYS), whatever its shape (a
  string, a number, a list, an object, given twice), in a record cut short or not JSON at all;
- every phone number anywhere (a description, an unknown field), written with spaces, dashes, a country code or
  full-width digits.
The text around what is masked stays byte for byte as it was, so that `masked` is true only when something was
masked. Bytes that are not UTF-8 are read as UTF-8 with their stray bytes kept, or as UTF-16 where they are that;
a record that is base64 text of such a record is masked inside. A name in free text ("I am Wang Fang") cannot be
told from other words and is not masked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

# members whose values are personal, at any depth; a phone-like one keeps its last four digits, the others their
# first character
PHONE_KEYS = frozenset({"phone", "mobile", "tel", "telephone", "phone_number", "contact_phone"})
PERSONAL_KEYS = PHONE_KEYS | {"reporter", "name", "contact", "email", "id_card", "wechat"}

# full-width digits, plus and parentheses, and the dashes and spaces of other scripts, as their ASCII kin: one
# character for one, so that a position in the normalised text is the same position in the original
_NORMAL = {**{0xFF10 + d: str(d) for d in range(10)}, 0xFF0B: "+", 0xFF08: "(", 0xFF09: ")", 0xFF0D: "-",
           **{c: "-" for c in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2212, 0xFE63)},
           **{c: " " for c in (0x00A0, 0x3000, 0x2002, 0x2003, 0x2009, 0x202F)}}
_SEP = r"[ \-]?"
# mainland mobile numbers and landlines with an area code, an optional separator between any digit groups; a digit
# run after a decimal point is a coordinate, not a phone number
_PHONE = re.compile(
    r"(?<![0-9.])(\+?86" + _SEP + r")?"
    r"(1" + _SEP + r"[3-9](?:" + _SEP + r"[0-9]){9}"
    r"|\(?0[0-9]{2,3}\)?" + _SEP + r"[0-9]{3,4}" + _SEP + r"[0-9]{4}"
    # a mobile number cut short by the end of a record that was cut short
    r"|1" + _SEP + r"[3-9](?:" + _SEP + r"[0-9]){4,8}" + _SEP + r"\Z)(?![0-9])")
# the tokens masking reads: strings (possibly cut short at the end), numbers, brackets, colons
_TOKEN = re.compile(r""""(?:[^"\\]|\\.)*(?:"|\Z)|'(?:[^'\\]|\\.)*(?:'|\Z)|[{}\[\]:,]|-?[0-9][0-9.eE+\-]*""", re.S)
_COLON_NEXT = re.compile(r"\s*:")
# what any personal member's name, or any phone number, must contain: text without either is left as it is
# at once (most dead letters, every unit event's provenance)
_KEY_WORDS = ("reporter", "name", "phone", "mobile", "tel", "contact", "email", "id_card", "wechat")
_DIGITS = "0-9\uff10-\uff19"
_MAYBE_PHONE = re.compile(f"[{_DIGITS}]{{3}}[ \\-\uff0d\u2010-\u2015\u2212]?[{_DIGITS}]{{3}}")
# a personal member however it is quoted (or not), for text whose quotes do not pair up (a stray quote in a
# string flips what the token reader takes for inside and outside strings): the value up to its delimiter
_MEMBER = re.compile(r"(?<![A-Za-z0-9_])[\"']?(" + "|".join(sorted(PERSONAL_KEYS)) + r")[\"']?\s*[:=]\s*[\[\s\"']*"
                     r"([^\"',{}\[\]\n]*[^\"',{}\[\]\n\s])", re.I)
# text that is nothing but base64 (a record encoded once more by its producer), long enough to hold a reporter
_BASE64 = re.compile(r"\s*\"?([A-Za-z0-9+/]{24,}={0,2})\"?\s*\Z")
# masked text reaches this far beyond the excerpt, so that a number cut by the excerpt's end is masked whole
_MARGIN = 64


def mask_phone(text: str) -> str:
    """Keep the last four digits, which is what a duty officer reads back to a caller."""
    return _mask_phones(text)[0]


def mask_name(name: str) -> str:
    # a stray byte or half a surrogate pair is not kept as the first character: it may be half of one
    keep = name[:1] if name[:1] and not 0xD800 <= ord(name[0]) <= 0xDFFF else "*"
    return keep + "*" * max(1, len(name) - 1) if name else name


def mask_digits(value: str) -> str:
    """A phone however it is written: every digit but the last four starred, the rest kept."""
    normal = value.translate(_NORMAL)
    digits = [i for i, c in enumerate(normal) if c.isascii() and c.isdigit()]
    if not digits:
        return mask_name(value)
    hidden = set(digits[:-4])
    # a lone surrogate (a stray byte, a broken pair) is starred too: it may be half of something
    return "".join("*" if i in hidden or 0xD800 <= ord(c) <= 0xDFFF else c for i, c in enumerate(value))


def mask_personal_data(raw: str) -> tuple[str, bool]:
    """`raw` with the reporter's personal data masked; the flag says whether anything was masked."""
    masked, count = _masked_text(raw)
    return masked, count > 0


@dataclass(frozen=True)
class MaskedBytes:
    value: bytes  # the first bytes of the original (all of them if `whole`), masked
    masked: int  # how many values and phone numbers were masked
    whole: bool  # `value` is the whole original, masked (else its first `window` bytes and a margin)


def mask_bytes(value: bytes, window: int) -> MaskedBytes:
    """The first `window` bytes of `value` (and a little more) masked as mask_personal_data does, whatever the
    bytes are: invalid UTF-8 stays exactly as it was around what is masked. The rest of `value` is not looked at
    (it is not kept)."""
    head = value[:window + _MARGIN]
    codec = _codec_of(head)
    if codec != "utf-8":
        head = head[:len(head) // 2 * 2]
    text = head.decode(codec, _ERRORS[codec])
    masked, count = _masked_text(text)
    return MaskedBytes(masked.encode(codec, _ERRORS[codec]), count, len(head) == len(value))


_ERRORS = {"utf-8": "surrogateescape", "utf-16-le": "surrogatepass", "utf-16-be": "surrogatepass"}


def _codec_of(head: bytes) -> str:
    """UTF-16 where the bytes are that (a byte-order mark, or every other byte a NUL), else UTF-8."""
    if head[:2] == b"\xff\xfe":
        return "utf-16-le"
    if head[:2] == b"\xfe\xff":
        return "utf-16-be"
    sample = head[:256]
    if len(sample) >= 8:
        for codec, zeros in (("utf-16-le", sample[1::2]), ("utf-16-be", sample[0::2])):
            if zeros.count(0) >= 0.9 * len(zeros):
                return codec
    return "utf-8"


def _masked_text(text: str) -> tuple[str, int]:
    masked, members, loose, phones = text, 0, 0, 0
    lowered = text.lower()
    # a key written with escapes ("n\u0061me") has a backslash
    if "\\" in text or any(word in lowered for word in _KEY_WORDS):
        masked, members = _mask_members(masked)
        masked, loose = _mask_loose_members(masked)
    if _MAYBE_PHONE.search(masked):
        masked, phones = _mask_phones(masked)
    count = members + loose + phones
    if count == 0 and (inner := _masked_base64(text)) is not None:
        return inner
    return masked, count


def _mask_phones(text: str) -> tuple[str, int]:
    normal = text if text.isascii() else text.translate(_NORMAL)
    pieces, last, count = [], 0, 0
    for match in _PHONE.finditer(normal):
        start = match.start(2)
        pieces += [text[last:start], mask_digits(text[start:match.end(2)])]
        last, count = match.end(2), count + 1
    return "".join(pieces) + text[last:], count


def _mask_members(text: str) -> tuple[str, int]:
    """Every value under a personal member masked, in text that need not be valid JSON."""
    pieces, last, count = [], 0, 0
    depth = 0
    key = None  # the member whose value comes next (or whose list or object we are in)
    value_of = None  # the personal member whose value is being read
    region = None  # the depth at which a personal member's object or list began, while inside it
    for token in _TOKEN.finditer(text):
        kind = token.group()[0]
        if kind in "\"'":
            if _COLON_NEXT.match(text, token.end()):
                key = _decoded(token.group()).lower()
                continue
            if region is None and value_of is None:
                continue
            hidden = _masked_string(token.group(), key or value_of)
            if hidden != token.group():
                pieces += [text[last:token.start()], hidden]
                last, count = token.end(), count + 1
            value_of = None
        elif kind in "{[":
            depth += 1
            if region is None and value_of is not None:
                region = depth
            value_of = None
        elif kind in "}]":
            if region == depth:
                region = None
            depth -= 1
        elif kind == ":":
            value_of = key if key in PERSONAL_KEYS else None
        elif kind == ",":
            value_of = None
        elif region is not None or value_of is not None:  # a number: a phone given as one
            pieces += [text[last:token.start()], json.dumps(mask_digits(token.group()))]
            last, count = token.end(), count + 1
            value_of = None
    return "".join(pieces) + text[last:], count


def _mask_loose_members(text: str) -> tuple[str, int]:
    """The personal members that the token reader missed, found by their names (what it masked stays so)."""
    count = 0

    def masked(match: re.Match) -> str:
        nonlocal count
        value = match.group(2)
        if value in ("null", "true", "false"):
            return match.group()
        hidden = mask_digits(value) if match.group(1).lower() in PHONE_KEYS else mask_name(value)
        count += hidden != value
        return match.group()[:match.start(2) - match.start()] + hidden

    return _MEMBER.sub(masked, text), count


def _decoded(literal: str) -> str:
    """A string token's value; as it stands between its quotes where it is not valid JSON (cut short, single
    quotes, a broken escape)."""
    try:
        value = json.loads(literal)
        if isinstance(value, str):
            return value
    except ValueError:
        pass
    inner = literal[1:]
    return inner[:-1] if len(inner) and inner[-1] == literal[0] else inner


def _masked_string(literal: str, key: str | None) -> str:
    quote = literal[0]
    closed = len(literal) > 1 and literal[-1] == quote
    value = _decoded(literal)
    masked = mask_digits(value) if key in PHONE_KEYS else mask_name(value)
    # the mask holds no quote or backslash, only the value's first character may need escaping
    body = json.dumps(masked, ensure_ascii=False)[1:-1] if quote == '"' else masked.replace("'", "\\'")
    if "\\" in masked[:1] or quote in masked[:1]:
        body = "*" * len(masked)
    return quote + body + (quote if closed else "")


def _masked_base64(text: str) -> tuple[str, int] | None:
    """A record sent as base64 text (encoded once more by its producer): masked inside, and encoded again."""
    match = _BASE64.match(text)
    if match is None:
        return None
    encoded = match.group(1)
    encoded = encoded[:len(encoded) // 4 * 4]  # whole groups only: an excerpt may cut it
    try:
        inner = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    masked = mask_bytes(inner, len(inner))
    if masked.masked == 0:
        return None
    again = base64.b64encode(masked.value).decode("ascii")
    return text[:match.start(1)] + again + text[match.start(1) + len(encoded):], masked.masked
