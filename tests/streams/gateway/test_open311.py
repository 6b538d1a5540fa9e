"""GeoReport v2 conformance against the session's real broker, PostgreSQL and worker: XML and JSON on every endpoint
(by extension), discovery, tokens, a location given by address alone, merged requests listed under their own id,
posted fields returned, requested_datetime never after updated_datetime — and a third-party Open311 client
(`georeport`, from PyPI) reading the gateway in both formats."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from xml.etree import ElementTree

import httpx
import pytest
from georeport import GeoReport

from tests.streams.gateway.helpers import a_point, post, registered

pytestmark = pytest.mark.integration


def xml(response: httpx.Response, status: int = 200) -> ElementTree.Element:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    return ElementTree.fromstring(response.content)


# ----------------------------------------------------------------------------- every endpoint in XML


async def test_every_endpoint_answers_xml_and_json(gateway, geography, catalogue, worker):
    services = xml(await gateway.get("/services.xml"))
    assert services.tag == "services"
    assert [s.findtext("service_code") for s in services.findall("service")] == catalogue.codes
    fight = next(s for s in services if s.findtext("service_code") == "PS-FIGHT")
    assert fight.findtext("metadata") == "false" and fight.findtext("group") == "public_security"

    definition = xml(await gateway.get("/services/PS-FIGHT.xml"))
    assert definition.tag == "service_definition" and definition.findtext("service_code") == "PS-FIGHT"
    missing = xml(await gateway.get("/services/NO-SUCH.xml"), 404)
    assert missing.tag == "errors" and missing.find("error").findtext("code") == "404"

    lat, lon = a_point(geography)  # a category no other test posts: a merge would show the first report's place
    created = xml(await gateway.post("/requests.xml", data={
        "api_key": gateway.api_key, "service_code": "CM-FRONTAGE", "lat": lat, "long": lon,
        "description": "lamp out", "media_url": "http://example.org/lamp.jpg"},
        headers={"Idempotency-Key": f"test-{uuid.uuid4()}"}), 201)
    assert created.tag == "service_requests"
    request_id = created.find("request").findtext("service_request_id")
    token = created.find("request").findtext("token")
    assert request_id.startswith("GW-") and token

    await registered(gateway, request_id, ready=lambda f: f["description"])
    one = xml(await gateway.get(f"/requests/{request_id}.xml", params={"api_key": gateway.api_key}))
    [request] = one.findall("request")
    assert request.findtext("service_request_id") == request_id and request.findtext("status") == "open"
    # the posted fields come back to their client, in XML as in JSON
    assert request.findtext("description") == "lamp out"
    assert request.findtext("media_url") == "http://example.org/lamp.jpg"
    assert float(request.findtext("lat")) == lat

    listed = xml(await gateway.get("/requests.xml", params={"service_code": "CM-FRONTAGE", "limit": 1000}))
    assert request_id in {r.findtext("service_request_id") for r in listed.findall("request")}
    by_token = xml(await gateway.get(f"/tokens/{token}.xml"))
    assert by_token.find("request").findtext("service_request_id") == request_id
    as_json = (await gateway.get(f"/tokens/{token}.json")).json()
    assert as_json == [{"service_request_id": request_id, "token": token}]
    assert (await gateway.get("/tokens/GW-0000000000000000.json")).status_code == 404
    bad = xml(await gateway.get("/requests.xml", params={"status": "pending"}), 400)
    assert "status" in bad.find("error").findtext("description")


async def test_discovery(gateway):
    document = (await gateway.get("/discovery.json")).json()
    [endpoint] = document["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://gateway" and set(endpoint["formats"]) == {"application/json", "text/xml"}
    assert "patrol keys issue" in document["key_service"]
    found = xml(await gateway.get("/discovery.xml"))
    assert found.tag == "discovery"
    assert [f.text for f in found.find("endpoints").find("endpoint").find("formats")] == [
        "application/json", "text/xml"]


# ----------------------------------------------------------------------------- locations, merges, times


@pytest.mark.parametrize("where, street", [({"address_string": "Shuyuan Street 12"}, "JJ-SYJ"),
                                           ({"address_string": "书院街 5号"}, "JJ-SYJ"),
                                           ({"address_id": "JJ-CXL"}, "JJ-CXL")])
async def test_a_request_located_by_address_alone_is_placed_in_its_street(gateway, geography, worker, where, street):
    response = await post(gateway, {"service_code": "CM-FLYPOST", **where}, token=f"test-{uuid.uuid4()}")
    assert response.status_code == 201, response.text
    found = await registered(gateway, response.json()[0]["service_request_id"])
    assert geography.locate(found["lat"], found["long"]).street == street
    assert found["address"] == where.get("address_string")


async def test_merged_requests_are_listed_under_their_own_id_and_never_updated_before_requested(gateway, geography,
                                                                                                 worker):
    lat, lon = a_point(geography)
    # merged within 500 m and half an hour (a category of its own here: test_gateway.py merges PS-MISSING)
    fields = {"service_code": "TR-JAM", "lat": lat, "long": lon}
    first = (await post(gateway, fields, token=f"test-{uuid.uuid4()}")).json()[0]["service_request_id"]
    await registered(gateway, first)
    second = (await post(gateway, {**fields, "lat": lat + 0.001, "description": "seen near the school gate"},
                         token=f"test-{uuid.uuid4()}")).json()[0]["service_request_id"]
    merged = await registered(gateway, second, ready=lambda f: f["description"])
    # its own posted text and place, not the first's
    assert merged["description"] == "seen near the school gate"
    assert (merged["lat"], merged["long"]) == (pytest.approx(lat + 0.001), lon)

    for fmt in ("json", "xml"):
        response = await gateway.get(f"/requests.{fmt}", params={"service_code": "TR-JAM", "limit": 1000,
                                                                  "api_key": gateway.api_key})
        if fmt == "json":
            items = {r["service_request_id"]: r for r in response.json()}
        else:
            items = {r.findtext("service_request_id"): {e.tag: e.text for e in r}
                     for r in xml(response).findall("request")}
        assert {first, second} <= set(items)
        assert items[first]["incident_id"] == items[second]["incident_id"]
        for item in items.values():
            assert datetime.fromisoformat(item["requested_datetime"]) <= datetime.fromisoformat(
                item["updated_datetime"]), item


# ----------------------------------------------------------------------------- a third-party client


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_third_party_open311_client_reads_the_gateway(served_gateway, keys, geography, catalogue, worker,
                                                              fmt):
    """`georeport` (PyPI), a GeoReport v2 client: it reads services, a definition, lists and one request, in the
    format asked. (It does not post: the POST is form-encoded as the specification has it, with httpx.)"""
    lat, lon = a_point(geography)
    async with httpx.AsyncClient(base_url=served_gateway) as client:
        response = await post(client, {"service_code": "TR-SIGNAL", "lat": lat, "long": lon}, key=keys["hotline"],
                              token=f"test-{uuid.uuid4()}", path=f"/requests.{fmt}")
        assert response.status_code == 201, response.text
        request_id = (response.json()[0]["service_request_id"] if fmt == "json" else
                      ElementTree.fromstring(response.content).find("request").findtext("service_request_id"))
        await registered(client, request_id)

    reader = GeoReport(served_gateway, output_format=fmt)
    services = await asyncio.to_thread(reader.get_service_list)
    assert [s["service_code"] for s in services] == catalogue.codes
    definition = await asyncio.to_thread(reader.get_service_definition, "TR-SIGNAL")
    assert definition["service_code"] == "TR-SIGNAL"
    listed = await asyncio.to_thread(reader.get_service_requests, service_code="TR-SIGNAL", status="open")
    listed = listed if isinstance(listed, list) else [listed]
    assert request_id in {r["service_request_id"] for r in listed}
    one = await asyncio.to_thread(reader.get_service_request, request_id)
    assert one["service_request_id"] == request_id and one["service_code"] == "TR-SIGNAL"
    assert round(float(one["lat"]), 3) == float(one["lat"])  # read anonymously: coarse
    several = await asyncio.to_thread(reader.get_service_requests, service_request_id=request_id)
    several = several if isinstance(several, list) else [several]
    assert [r["service_request_id"] for r in several] == [request_id]
