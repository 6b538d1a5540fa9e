"""Open311's two formats: every answer as JSON or as GeoReport v2 XML, chosen by the path's extension (`.xml`;
`.json` and no extension answer JSON). The XML is built with the standard library's ElementTree from the same
models the JSON is dumped from, so the two formats cannot say different things."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.etree import ElementTree

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

XML_MEDIA_TYPE = "text/xml"


class XMLResponse(Response):
    media_type = XML_MEDIA_TYPE


def wants_xml(request: Request) -> bool:
    return request.url.path.endswith(".xml")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# the item element of each inner list, by the list's element name
_ITEMS = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute", "values": "value"}


def _fill(element: ElementTree.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _fill(ElementTree.SubElement(element, key), inner)
    elif isinstance(value, list):
        for inner in value:
            _fill(ElementTree.SubElement(element, _ITEMS.get(element.tag, "item")), inner)
    elif value is not None:  # None: the element is there, empty (as in the specification's examples)
        element.text = _text(value)


def xml_document(root: str, item: str | None, body: Any) -> bytes:
    """`body` (a list of items, or one object) under `root`; each item of a list as an `item` element."""
    element = ElementTree.Element(root)
    if isinstance(body, list):
        for entry in body:
            _fill(ElementTree.SubElement(element, item or "item"), entry)
    else:
        _fill(element, body)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(element, encoding="unicode").encode()


# root and item elements of each answer, as GeoReport v2 names them
SHAPES = {
    "services": ("services", "service"),
    "service_definition": ("service_definition", None),
    "service_requests": ("service_requests", "request"),
    "discovery": ("discovery", None),
    "errors": ("errors", "error"),
}


def render(request: Request, shape: str, body: Any, status_code: int = 200, headers: dict | None = None) -> Response:
    """The answer in the format the path asks for."""
    data = jsonable_encoder(body.model_dump() if isinstance(body, BaseModel) else
                            [b.model_dump() if isinstance(b, BaseModel) else b for b in body]
                            if isinstance(body, list) else body)
    if wants_xml(request):
        root, item = SHAPES[shape]
        return XMLResponse(xml_document(root, item, data), status_code=status_code, headers=headers)
    return JSONResponse(data, status_code=status_code, headers=headers)
