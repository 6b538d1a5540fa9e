"""A dead letter is small, says which bytes it speaks of, masks the reporter, and cannot fail on what it is given."""

import base64
import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.dead_letters import EXCERPT_BYTES, Rejected, bare_dead_letter, dead_letter
from processors.intake import Limits, admit_report, admit_unit_event
from processors.register import UnitRegister
from tests.processors.conftest import NOW, inbound, report

# the producer's default limit on one record (aiokafka's max_request_size): a dead letter must stay far below it
PRODUCER_LIMIT = 1024 * 1024


def original_of(letter) -> bytes:
    return base64.b64decode(letter.raw) if letter.raw_encoding == "base64" else letter.raw.encode()


def test_a_record_of_deep_nesting_is_invalid_json_not_a_crash(catalogue, geography):
    record = inbound(b"[" * 50_000)
    rejected = admit_report(record, catalogue, geography, Limits())
    assert rejected.reason == "invalid_json" and "recursion" in rejected.error
    letter = dead_letter(record, rejected, NOW)
    assert letter.raw == "[" * EXCERPT_BYTES and letter.raw_truncated and letter.raw_length == 50_000


def test_a_large_blob_of_control_bytes_gives_a_dead_letter_of_a_few_kib(catalogue, geography):
    blob = bytes(range(32)) * (180_000 // 32)
    record = inbound(blob)
    letter = dead_letter(record, admit_report(record, catalogue, geography, Limits()), NOW)
    assert letter.reason == "oversize"
    assert len(letter.to_json_bytes()) < 3 * EXCERPT_BYTES
    assert letter.raw_encoding == "base64" and original_of(letter) == blob[:EXCERPT_BYTES]
    assert (letter.raw_length, letter.raw_sha256) == (len(blob), hashlib.sha256(blob).hexdigest())
    assert letter.raw_truncated


def test_a_short_record_is_kept_whole_and_says_so(catalogue, geography):
    record = inbound(b"\xff not utf-8")
    letter = dead_letter(record, admit_report(record, catalogue, geography, Limits()), NOW)
    assert original_of(letter) == b"\xff not utf-8" and not letter.raw_truncated
    assert letter.raw_length == len(b"\xff not utf-8")


def test_an_excerpt_never_ends_inside_a_character(catalogue, geography):
    record = inbound(("打" * 3000).encode())  # 3 bytes a character: 4096 is not a multiple of 3
    letter = dead_letter(record, admit_report(record, catalogue, geography, Limits()), NOW)
    assert letter.raw_encoding == "utf-8" and set(letter.raw) == {"打"} and len(letter.raw) == EXCERPT_BYTES // 3


def test_the_reporter_is_masked_however_the_record_is_broken(catalogue, geography):
    cases = [
        b'{"report_id": "R-1", "reporter": {"name": "Wang Fang", "phone": "13812345678"',  # cut short
        json.dumps(report(reporter={"name": ["Wang Fang", "Li Lei"], "phone": 13812345678},
                          category="XX-NOPE")).encode(),  # a name given as a list, a phone as a number
        b'{"reporter": {"name": "Wang Fang"}, "reporter": {"name": "Li Lei"}}',  # a second reporter member
        b'\xff{"reporter": {"name": "Wang Fang", "phone": "13812345678"}}',  # not UTF-8 at all
        b"[" * 1000 + b'{"name": "Wang Fang", "phone": "13812345678"}',  # past the parser's nesting limit
    ]
    for raw in cases:
        record = inbound(raw)
        letter = dead_letter(record, admit_report(record, catalogue, geography, Limits()), NOW)
        kept = original_of(letter)
        for secret in (b"Wang Fang", b"Li Lei", b"13812345678", b"Fang"):
            assert secret not in kept, (raw[:60], kept[:200])
        assert letter.raw_masked
        if b"13812345678" in raw:
            assert b"*******5678" in kept  # the last four digits, which the duty officer reads back


def test_the_error_text_is_bounded(catalogue, geography):
    record = inbound(json.dumps({"schema_version": "x" * 100_000}).encode())
    letter = dead_letter(record, admit_report(record, catalogue, geography, Limits(max_bytes=1 << 20)), NOW)
    assert letter.reason == "unsupported_schema_version" and len(letter.error) <= 1000


def test_a_bare_dead_letter_keeps_only_where_the_record_is():
    letter = bare_dead_letter("incident.reports", 3, 99, Rejected("processing_error", "boom"), NOW)
    assert (letter.topic, letter.partition, letter.offset, letter.raw, letter.raw_truncated) == (
        "incident.reports", 3, 99, "", True)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(
    st.binary(max_size=3 * EXCERPT_BYTES),
    st.integers(1, 200_000).map(lambda n: b"{" * n),
    st.text(max_size=3 * EXCERPT_BYTES).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(st.binary(max_size=64), st.integers(0, 1_200_000)).map(lambda t: t[0] * (t[1] // max(1, len(t[0])))),
), topic=st.sampled_from(["incident.reports", "unit.events"]))
def test_any_bytes_give_a_small_dead_letter_or_a_work_item(value, topic, catalogue, geography):
    record = inbound(value, topic=topic)
    if topic == "unit.events":
        verdict = admit_unit_event(record, geography, Limits(), "JINJIANG", UnitRegister(unlisted="admit"))
    else:
        verdict = admit_report(record, catalogue, geography, Limits())
    if isinstance(verdict, Rejected):
        letter = dead_letter(record, verdict, NOW)
        # at worst every byte of the excerpt is a control character, escaped as six (\u0001)
        assert len(letter.to_json_bytes()) < 7 * EXCERPT_BYTES + 2048 < PRODUCER_LIMIT // 30
        assert letter.raw_length == len(value) and letter.raw_sha256 == hashlib.sha256(value).hexdigest()
    else:
        assert len(verdict.model_dump_json()) < PRODUCER_LIMIT


# --- one test for each way a reporter once slipped through the masking ---

NAME, PHONE = "Wang Fang", "13812345678"


def letter_of(raw: bytes, catalogue, geography):
    record = inbound(raw)
    return dead_letter(record, admit_report(record, catalogue, geography, Limits()), NOW)


def assert_hidden(letter, *secrets: bytes) -> bytes:
    kept = original_of(letter)
    for secret in secrets:
        assert secret not in kept, (secret, kept[:300])
    assert letter.raw_masked
    return kept


def test_a_name_in_invalid_json_is_masked(catalogue, geography):
    cases = [
        # a trailing comma; single quotes (a producer printing its dict); a stray quote in the description, which
        # flips inside and outside strings for a reader of tokens
        b'{"schema_version": 1, "reporter": {"name": "Wang Fang", "phone": "13812345678"}, "lat": 30.6,}',
        b"{'schema_version': 1, 'reporter': {'name': 'Wang Fang', 'phone': '13812345678'}}",
        b'{"description": "he shouted "stop! and ran", "reporter": {"name": "Wang Fang", "email": "wf@example.org"}}',
        b'{"reporter": {"name" : "Wang Fang"',  # cut short inside the name
    ]
    for raw in cases:
        letter = letter_of(raw, catalogue, geography)
        assert letter.reason == "invalid_json"
        assert_hidden(letter, b"Wang Fang", b"Fang", b"13812345678", b"wf@example")


def test_bytes_kept_as_base64_are_masked_inside(catalogue, geography):
    gbk = "王芳".encode("gb18030")
    not_utf8 = b'{"reporter": {"name": "' + gbk + b'", "phone": "13812345678"}, "x": "\x00"}'
    utf16 = json.dumps(report(category="XX-NOPE", reporter={"name": NAME, "phone": PHONE})).encode("utf-16-le")
    doubly = base64.b64encode(json.dumps(report(reporter={"name": NAME, "phone": PHONE})).encode())
    for raw in (not_utf8, b"\xff\xfe" + utf16[2:], utf16):
        letter = letter_of(raw, catalogue, geography)
        assert letter.raw_encoding == "base64"
        kept = assert_hidden(letter, gbk, b"13812345678", NAME.encode("utf-16-le"), PHONE.encode("utf-16-le"))
        assert b"5678" in kept or "5678".encode("utf-16-le") in kept
    letter = letter_of(doubly, catalogue, geography)
    inner = base64.b64decode(letter.raw)
    assert NAME.encode() not in inner and PHONE.encode() not in inner and b"*******5678" in inner


def test_every_reporter_member_is_masked_when_it_comes_twice(catalogue, geography):
    for second in (b'{"name": "Li Lei"}', b"null", b'"Li Lei 13912345678"'):
        raw = (b'{"schema_version": 1, "reporter": {"name": "Wang Fang", "email": "wf@example.org", '
               b'"phone": "13812345678"}, "reporter": ' + second + b"}")
        letter = letter_of(raw, catalogue, geography)
        assert_hidden(letter, b"Wang Fang", b"wf@example", b"13812345678", b"Li Lei", b"13912345678")


def test_a_name_given_as_a_list_or_an_object_is_masked(catalogue, geography):
    for name in (["Wang Fang", "Li Lei"], {"family": "Wang Fang", "given": "Li Lei"}, [["Wang Fang"], "Li Lei"]):
        raw = json.dumps(report(category="XX-NOPE", reporter={"name": name, "phone": [PHONE]})).encode()
        letter = letter_of(raw, catalogue, geography)
        kept = assert_hidden(letter, b"Wang Fang", b"Li Lei", PHONE.encode())
        assert json.loads(kept)["reporter"]["phone"] == ["*******5678"]  # still JSON, the last four kept


def test_phones_written_with_spaces_dashes_or_full_width_digits_are_masked(catalogue, geography):
    for phone in ("138 1234 5678", "138-1234-5678", "+86 138 1234 5678", "１３８１２３４５６７８", "(028) 8654-5678",
                  "１３８－１２３４－５６７８"):
        raw = json.dumps(report(category="XX-NOPE", reporter={"phone": phone}, description=f"call me on {phone}"),
                         ensure_ascii=False).encode()
        letter = letter_of(raw, catalogue, geography)
        kept = json.loads(assert_hidden(letter, phone.encode()))
        for masked in (kept["reporter"]["phone"], kept["description"][len("call me on "):]):
            digits = [c for c in masked.translate({0xFF10 + d: str(d) for d in range(10)}) if c.isdigit()]
            assert "".join(digits[-4:]) == "5678" and len(digits) <= 4 + 2 * ("+86" in phone), masked


def test_raw_masked_says_whether_anything_was_masked(catalogue, geography):
    # nothing personal (an empty reporter, a null phone): the excerpt is the record byte for byte, and says so
    for doc in (report(category="XX-NOPE"), report(category="XX-NOPE", reporter={}),
                report(category="XX-NOPE", reporter={"phone": None}, description="no name given")):
        raw = json.dumps(doc, indent=1).encode()
        letter = letter_of(raw, catalogue, geography)
        assert (letter.raw.encode(), letter.raw_masked) == (raw, False)
    letter = letter_of(json.dumps(report(category="XX-NOPE", reporter={"name": "Li"})).encode(), catalogue, geography)
    assert letter.raw_masked and json.loads(letter.raw)["reporter"] == {"name": "L*"}


def test_an_error_text_that_quotes_the_record_is_masked_too(catalogue, geography):
    letter = dead_letter(inbound(b"{}"), Rejected("processing_error",
                                                  "ValidationError: input_value={'phone': '13812345678'}"), NOW)
    assert "13812345678" not in letter.error and "5678" in letter.error
