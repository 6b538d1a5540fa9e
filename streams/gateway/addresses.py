"""A request located by its address alone: matched against the street register (the geography's streets: their
codes, English and Chinese names) and located at street level, at a point inside the street found. The address is
kept as given; the position says only which street (街道) it is in. An address that names no street of the register
is refused, so that nothing is dispatched to a guess."""

from __future__ import annotations

import re

from processors.geography import Geography, Street

_SPACES = re.compile(r"[\s,.\-_/]+")


def _plain(text: str) -> str:
    return _SPACES.sub("", text).lower()


def _names(street: Street) -> list[str]:
    """The ways an address may name a street: 'Shuyuanjie', 'Shuyuan Street', '书院街街道', '书院街'."""
    names = [street.name]
    for pinyin, english in (("jie", "street"), ("lu", "road")):
        if street.name.lower().endswith(pinyin):
            names.append(street.name[: -len(pinyin)] + english)
    if street.name_zh:
        names += [street.name_zh, street.name_zh.removesuffix("街道")]
    return [_plain(n) for n in names if n]


def street_for_address(geography: Geography, address_string: str | None, address_id: str | None) -> Street | None:
    """The street an address_id (a street code) or an address_string names; the longest name found wins."""
    if address_id:
        return geography.by_code.get(address_id.strip())
    text = _plain(address_string or "")
    found = [(len(name), street.street, street) for street in geography.streets for name in _names(street)
             if len(name) >= 2 and name in text]
    return max(found, key=lambda f: (f[0], f[1]))[2] if found else None


def street_point(street: Street) -> tuple[float, float]:
    """A point inside the street (lat, lon), six decimals: where a request located at street level is put."""
    inside = street.polygon.representative_point()
    return round(inside.y, 6), round(inside.x, 6)
