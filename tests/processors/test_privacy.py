"""Personal data of reporters stays in the incident record: it never enters the work log, and dead letters carry
it masked."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.catalogue import Catalogue
from processors.dead_letters import dead_letter
from processors.district import DistrictCore
from processors.intake import Limits, admit_report
from processors.privacy import mask_personal_data
from tests.processors.conftest import NOW, inbound, report


def test_a_dead_letter_masks_the_reporter_but_keeps_the_rest(catalogue, geography):
    doc = report(category="XX-NOPE", reporter={"name": "Wang Fang", "phone": "13812345678"},
                 description="call me back on 13912345678")
    letter = dead_letter(inbound(doc), admit_report(inbound(doc), catalogue, geography, Limits()), NOW)
    assert letter.reason == "unknown_category" and letter.raw_masked
    kept = json.loads(letter.raw)
    assert kept["reporter"] == {"name": "W********", "phone": "*******5678"}
    assert kept["description"] == "call me back on *******5678"
    assert kept["category"] == "XX-NOPE" and kept["lat"] == doc["lat"]


def test_a_report_the_core_rejects_is_dead_lettered_by_where_it_is_and_none_of_its_bytes(catalogue, geography):
    record = inbound(report(reporter={"name": "Wang Fang", "phone": "13812345678"}), offset=42)
    admitted = admit_report(record, catalogue, geography, Limits())
    # the category left the catalogue between intake and the core (a roll-out in progress)
    rolled_out = Catalogue(categories=[c for c in catalogue.categories if c.code != "PS-FIGHT"],
                           calendars=catalogue.calendars)
    [letter] = DistrictCore("JINJIANG", rolled_out).apply(admitted.item)
    assert letter.reason == "unknown_category"
    assert (letter.topic, letter.partition, letter.offset, letter.key) == ("incident.reports", 0, 42, "R-1")
    assert (letter.raw, letter.raw_truncated, letter.raw_length) == ("", True, len(record.value))
    kept = letter.to_json_bytes().decode()
    assert "Wang" not in kept and "5678" not in kept


def test_unparseable_input_still_has_phone_numbers_masked(catalogue, geography):
    raw = b'{"report_id": "R-1", "reporter": {"phone": "13812345678"'
    letter = dead_letter(inbound(raw), admit_report(inbound(raw), catalogue, geography, Limits()), NOW)
    assert letter.reason == "invalid_json" and "13812345678" not in letter.raw and "5678" in letter.raw


def test_nothing_personal_means_nothing_changed():
    raw = json.dumps(report())
    assert mask_personal_data(raw) == (raw, False)


def test_coordinates_and_ids_are_not_mistaken_for_phone_numbers():
    raw = json.dumps({"lat": 30.65432109876, "lon": 104.07651234567, "report_id": "R-20261125123"})
    assert mask_personal_data(raw) == (raw, False)
    assert mask_personal_data("landline 028-86541234")[0] == "landline ***-****1234"


def test_the_created_event_holds_neither_reporter_nor_description_even_from_an_old_entry(catalogue, geography):
    from processors.messages import IncidentReport, WorkItem

    # as the intake of an earlier release wrote it to the work log: the report whole
    old = WorkItem(kind="report", district="JINJIANG", street="JJ-SYJ", at=NOW, report=IncidentReport(
        **report(reporter={"name": "Wang Fang", "phone": "13812345678"}, description="call me on 13812345678")))
    [created] = [m for m in DistrictCore("JINJIANG", catalogue).apply(old) if getattr(m, "type", None) == "created"]
    assert "reporter" not in created.data and "description" not in created.data
    assert "5678" not in created.model_dump_json()


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(categories=("L",)), min_size=2, max_size=12).map(lambda n: "Zq" + n),
       phone=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
       style=st.sampled_from(["plain", "spaced", "dashed", "wide", "+86"]),
       shape=st.sampled_from(["object", "list", "twice", "number"]),
       ascii_only=st.booleans(), cut=st.integers(0, 400))
def test_no_name_or_phone_survives_masking_whatever_the_shape_or_the_cut(name, phone, style, shape, ascii_only, cut):
    written = {"plain": phone, "spaced": f"{phone[:3]} {phone[3:7]} {phone[7:]}",
               "dashed": f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", "+86": f"+86 {phone}",
               "wide": phone.translate({ord(str(d)): chr(0xFF10 + d) for d in range(10)})}[style]
    reporter = {"object": {"name": name, "phone": written}, "list": {"name": [name], "phone": [written]},
                "twice": {"name": name}, "number": {"name": {"given": name}, "phone": int(phone)}}[shape]
    raw = json.dumps(report(reporter=reporter, description=f"call {written}"), ensure_ascii=ascii_only)
    if shape == "twice":
        raw = raw[:-1] + f', "reporter": {{"phone": "{written}", "name": "{name}"}}}}'
    raw = raw[:len(raw) - cut] if cut < len(raw) else raw
    masked, changed = mask_personal_data(raw)
    decoded = masked.encode().decode("unicode_escape", "ignore") if ascii_only else masked
    assert name not in masked and name not in decoded
    for form in (phone, written, phone[:7]):
        assert form not in masked
    assert changed == (masked != raw)
