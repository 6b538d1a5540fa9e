"""The field-unit terminal: its state alone (fast), then `patrol unit` itself in a real terminal (tmux) on the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from processors.messages import DispatchOrder, LogOn, unit_event_adapter
from streams.runtime.consumer_loop import partitions_of
from streams.field_unit import FieldUnit, build_log_on, keys_in, render
from streams.operations.publish import Outgoing
from streams.runtime.topics import DISPATCH_ORDERS, UNIT_EVENTS
from tests.streams.conftest import send

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


def order(order_id: str, kind: str = "assign", unit_id: str = "U1", **overrides) -> DispatchOrder:
    doc = dict(schema_version=1, order_id=order_id, kind=kind, incident_id=f"INC-{order_id}", unit_id=unit_id,
               role="lead", agency="police", category="PS-FIGHT", priority=1, lat=30.652, lon=104.0765,
               address="1 Chunxi Rd", eta_s=240.0, ack_by=T0 + timedelta(seconds=60), issued_at=T0,
               joint_with=["U7", "U9"])
    doc.update(overrides)
    return DispatchOrder(**doc)


def sent(unit: FieldUnit, key: str):
    """Press `key` as the I/O loop does: an event it returns is published, then applied."""
    press = unit.press(key, at=T0)
    if press.event is not None:
        unit.apply_event(press.event)
    return press


# --- the state class ---


def test_an_assigned_order_is_walked_through_its_lifecycle_by_single_keys():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    assert unit.current.order.order_id == "O1" and unit.current.stage == "assigned"

    events = [sent(unit, key).event for key in "aesr"]

    assert [e.type for e in events] == ["ack", "en_route", "on_scene", "resolved"]
    assert {e.order_id for e in events} == {"O1"} and {e.unit_id for e in events} == {"U1"}
    assert events[-1].outcome == "resolved"
    assert all(e.schema_version == 1 and e.at == T0 for e in events)
    assert len({e.event_id for e in events}) == 4 and all(e.event_id.startswith("U1-") for e in events)
    for e in events:  # what goes on the wire is a valid contract UnitEvent
        assert unit_event_adapter.validate_json(e.to_json_bytes()) == e
    assert unit.current is None and not unit.orders


def test_the_stage_follows_each_key():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    stages = []
    for key in "aes":
        sent(unit, key)
        stages.append(unit.current.stage)
    assert stages == ["acknowledged", "en_route", "on_scene"]


def test_on_scene_may_follow_ack_directly():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    sent(unit, "a")
    assert sent(unit, "s").event.type == "on_scene"


def test_the_newest_order_is_current_and_the_others_are_held():
    unit = FieldUnit("U1")
    for oid in ("O1", "O2", "O3"):
        unit.apply_order(order(oid))
    assert unit.current.order.order_id == "O3"
    assert [h.order.order_id for h in unit.others] == ["O2", "O1"]

    assert sent(unit, "d").event.order_id == "O3"  # keys act on the current order
    assert unit.current.order.order_id == "O2"


def test_a_cancel_removes_the_order_and_says_so():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    unit.apply_order(order("O2"))

    message = unit.apply_order(order("O2", kind="cancel"))

    assert "O2" in message and "cancelled by command centre" in message
    assert list(unit.orders) == ["O1"] and unit.current.order.order_id == "O1"
    assert "cancelled by command centre" in unit.log[-1].text


def test_a_cancel_of_an_order_not_held_changes_nothing_visible():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    assert unit.apply_order(order("O9", kind="cancel")) is None
    assert list(unit.orders) == ["O1"]


def test_decline_sends_the_order_id_and_removes_the_order():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    press = sent(unit, "d")
    assert press.event.type == "decline" and press.event.order_id == "O1"
    assert unit.current is None


@pytest.mark.parametrize("with_order, before, key, says", [
    (False, "", "a", "no current order to acknowledge"),
    (False, "", "e", "no current order to set en route"),
    (False, "", "s", "no current order"),
    (False, "", "r", "no current order"),
    (False, "", "d", "no current order"),
    (True, "a", "a", "already acknowledged"),
    (True, "", "e", "acknowledge (a) before en route"),
    (True, "", "s", "acknowledge (a) before on scene"),
    (True, "a", "r", "before resolving"),
    (True, "ae", "e", "already en route"),
    (True, "aes", "d", "resolve (r) it rather than decline"),
    (True, "", "x", "unknown key"),
])
def test_a_key_that_makes_no_sense_publishes_nothing(with_order, before, key, says):
    unit = FieldUnit("U1")
    if with_order:
        unit.apply_order(order("O1"))
    for k in before:
        sent(unit, k)
    stages = {oid: h.stage for oid, h in unit.orders.items()}

    press = unit.press(key, at=T0)

    assert press.event is None and not press.exit
    assert says in press.message
    assert {oid: h.stage for oid, h in unit.orders.items()} == stages


def test_log_off_publishes_and_exits_quit_only_exits():
    unit = FieldUnit("U1")
    log_off = unit.press("l", at=T0)
    assert log_off.exit and log_off.event.type == "log_off" and log_off.event.unit_id == "U1"
    quit_ = unit.press("q", at=T0)
    assert quit_.exit and quit_.event is None


def test_keys_are_case_insensitive():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    assert sent(unit, "A").event.type == "ack"


def test_an_order_addressed_to_another_unit_is_ignored_with_a_warning():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1", unit_id="U2"))
    assert unit.current is None and unit.log[-1].level == "warning"


def test_a_reissued_order_keeps_its_progress():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    sent(unit, "a")
    unit.apply_order(order("O1", eta_s=60.0))
    assert unit.current.stage == "acknowledged" and unit.current.order.eta_s == 60.0


def test_history_read_back_from_unit_events_restores_progress_after_a_restart():
    # A restarted terminal reads both topics from the beginning, in no fixed
    # order between them: finished orders stay gone, progress is kept.
    before = FieldUnit("U1")
    for oid in ("O1", "O2"):
        before.apply_order(order(oid))
    history = [sent(before, k).event for k in "aesr"]  # O2 resolved
    history.append(sent(before, "a").event)  # O1 acknowledged

    after = FieldUnit("U1")
    for event in history:  # unit.events first ...
        after.read_back(unit_event_adapter.validate_json(event.to_json_bytes()))
    for oid in ("O1", "O2"):  # ... then dispatch.orders
        after.apply_order(order(oid))

    assert list(after.orders) == ["O1"] and after.current.stage == "acknowledged"
    assert any("restored" in line.text for line in after.log)


def test_reading_back_our_own_event_is_harmless_and_not_announced():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    pressed = []
    for key in "ae":
        press = unit.press(key, at=T0)
        unit.own_event_ids.add(press.event.event_id)
        unit.apply_event(press.event)
        pressed.append(press.event)
    log_size = len(unit.log)
    for event in pressed:  # the ack read back after en route must not move the order back
        unit.read_back(event)
    assert unit.current.stage == "en_route" and len(unit.log) == log_size


@pytest.mark.parametrize("typed, keys", [
    (b"\x1b[Aa", ["a"]),  # Up, then a: the key after an arrow key counts
    (b"a\x1b[D", ["a"]),  # a, then Left: the arrow's final "D" is not a decline
    (b"e\x1bOD\x1b[1;5Cs", ["e", "s"]),  # Left in application mode, Ctrl-Right
    (b"\x1bOP\x1b[15~r", ["r"]),  # F1, F5
    (b"\x1b", []),  # Escape alone
])
def test_arrow_and_function_keys_are_dropped_and_only_they(typed, keys):
    assert keys_in(typed) == keys


def test_log_on_profile_needs_the_whole_profile():
    with pytest.raises(ValueError, match="--street, --lat"):
        build_log_on("U1", agency="police", kind="officer", street=None, mode="foot", lat=None, lon=104.0,
                     district="JINJIANG", delegations=None)
    with pytest.raises(ValueError, match="lat"):
        build_log_on("U1", agency="police", kind="officer", street="JJ-SYJ", mode="foot", lat=123.0, lon=104.0,
                     district="JINJIANG", delegations=None)
    event = build_log_on("U1", agency="police", kind="auxiliary", street="JJ-SYJ", mode="bike", lat=30.6,
                         lon=104.0, district="JINJIANG", delegations=["CM-GARBAGE"])
    assert isinstance(event, LogOn) and event.delegations == ["CM-GARBAGE"] and event.kind == "auxiliary"


def test_the_screen_shows_the_current_order_and_its_deadline():
    unit = FieldUnit("U1")
    unit.apply_order(order("O1"))
    unit.apply_order(order("O2", category="TR-ACCIDENT", role="support"))
    console = Console(record=True, width=120, color_system=None)
    console.print(render(unit, now=T0 + timedelta(seconds=20)))
    screen = console.export_text()
    assert "UNIT U1" in screen and "Current order — ASSIGNED" in screen
    assert "O2" in screen and "INC-O2" in screen and "TR-ACCIDENT" in screen and "SUPPORT" in screen
    assert "U7, U9" in screen and "1 Chunxi Rd" in screen and "4 min 0 s" in screen
    assert "in 40 s" in screen
    assert "Other orders held (1)" in screen and "O1" in screen

    console = Console(record=True, width=120, color_system=None)
    console.print(render(unit, now=T0 + timedelta(seconds=75)))
    assert "OVERDUE by 15 s" in console.export_text()


@pytest.mark.parametrize("address", ["[/] Chunxi Rd", "[blink bold red]x[/] Chunxi Rd", "[bold]1[/bold] Rd [/"])
def test_citizens_text_is_shown_as_plain_text_and_does_not_kill_the_painter(address):
    unit = FieldUnit("U1")
    unit.apply_order(order("O1", address=address))  # held, in the table of others
    unit.apply_order(order("O2", address=address))  # current
    console = Console(record=True, width=160, color_system="truecolor")
    console.print(render(unit, now=T0))
    screen = console.export_text(styles=False)
    assert screen.count(address) >= 2, screen  # the current order, the table of others (and the log)
    # the markup was not applied: nothing on the screen blinks
    assert "\x1b[5m" not in console.export_text(styles=True)


# --- the real terminal: `patrol unit` in tmux, a client of the session's field API ---


class Tmux:
    """One tmux server of our own (-L), so the test never touches a user's sessions."""

    def __init__(self, env: dict[str, str]):
        self.socket = f"patrol-test-{uuid.uuid4().hex[:10]}"
        self.session = "unit"
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], env=self.env,
                              capture_output=True, text=True, timeout=30, check=check)

    def start(self, command: str) -> None:
        self("new-session", "-d", "-s", self.session, "-x", "120", "-y", "40", command)

    def screen(self) -> str:
        result = self("capture-pane", "-p", "-t", self.session, check=False)
        return result.stdout if result.returncode == 0 else ""

    def alive(self) -> bool:
        return self("has-session", "-t", self.session, check=False).returncode == 0

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def kill(self) -> None:
        self("kill-server", check=False)


async def until(probe, what: str, explain, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{explain()}")


class UnitEventsReader:
    """Every record of unit.events keyed by one unit, read without a consumer group from the beginning."""

    def __init__(self, settings, unit_id: str):
        self.settings, self.key, self.events = settings, unit_id.encode(), []

    async def __aenter__(self):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                                         **self.settings.kafka_client_options())
        await self.consumer.start()
        partitions = await partitions_of(self.consumer, UNIT_EVENTS)
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        return self

    async def __aexit__(self, *exc):
        await self.consumer.stop()

    async def read(self, count: int, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                self.events += [json.loads(r.value) for r in records if r.key == self.key]
        return self.events


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
async def test_the_terminal_in_tmux_reports_each_key_on_unit_events(infrastructure, field_api, tmp_path,
                                                                    isolated_district):
    run = uuid.uuid4().hex[:10]
    # a district of its own: in the sample one, any report another test published (the gateway's schema-driven
    # examples, say) could be dispatched to this unit before the screen shows "No current order"
    street = isolated_district.streets[0]
    lat, lon = isolated_district.point()
    unit_id, order_id, cancelled_id = f"U-{run}", f"ORD-{run}", f"ORD-{run}-x"
    stderr = tmp_path / "unit.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    device = await field_api.device(unit_id)
    # the terminal knows no broker: only the field API, and its device's credential
    env.update(PATROL_FIELD_API_URL=field_api.url, PATROL_FIELD_DEVICE_ID=device.device_id,
               PATROL_FIELD_DEVICE_SECRET=device.secret, PATROL_LOG_LEVEL=infrastructure.log_level)
    env.update(TERM="xterm-256color", LANG="C.UTF-8")
    command = shlex.join([sys.executable, "-m", "streams.cli", "unit", unit_id, "--log-on", "--agency", "police",
                          "--district", isolated_district.district, "--street", street, "--lat", str(lat), "--lon", str(lon),
                          "--mode", "bike"])
    tmux = Tmux(env)

    def explain() -> str:
        log = stderr.read_text() if stderr.exists() else ""
        return f"--- screen ---\n{tmux.screen()}\n--- stderr ---\n{log[-3000:]}"

    async def shows(*texts: str) -> str:
        # The terminal repaints top to bottom and a capture can catch it half drawn (the
        # new current order above, the old log below): every text a step checks is waited
        # for together, none is asserted on a capture that was taken for other texts.
        return await until(lambda: (s := tmux.screen()) and all(t in s for t in texts) and s,
                           f"screen shows {texts}", explain)

    def dispatch(o: DispatchOrder | bytes, to: str = unit_id) -> Outgoing:
        value = o if isinstance(o, bytes) else o.to_json_bytes()
        return Outgoing(DISPATCH_ORDERS, to.encode(), value)

    try:
        tmux.start(f"cd {shlex.quote(str(Path(__file__).parents[3]))} && {command} 2>{shlex.quote(str(stderr))}")
        await shows(f"UNIT {unit_id}", "LOGGED ON", "No current order")

        tmux.keys("e")  # nothing to be en route to: a message, no event
        await shows("no current order to set en route")

        now = datetime.now(timezone.utc)
        issued = dict(unit_id=unit_id, issued_at=now, ack_by=now + timedelta(seconds=90))
        others = f"ORD-{run}-someone-else"
        await send(infrastructure, [
            dispatch(b"{ not a dispatch order"),
            dispatch(order(others, **{**issued, "unit_id": f"U-{run}-other"}), to=f"U-{run}-other"),
            dispatch(order(cancelled_id, **issued)),
            dispatch(order(cancelled_id, kind="cancel", **issued)),
            dispatch(order(order_id, joint_with=["U-other"], **issued)),
        ])
        screen = await shows(order_id, "Current order — ASSIGNED", "U-other",
                             f"order {cancelled_id} cancelled by command centre")
        assert others not in screen  # only its own unit's orders reach a terminal

        # an arrow key next to a letter (one read of the keyboard) is neither lost nor read as letters: Left
        # ends in "D", and that must not decline the order
        for keys, stage in ((("Up", "a"), "ACKNOWLEDGED"), (("e", "Left"), "EN ROUTE"), (("s",), "ON SCENE")):
            tmux.keys(*keys)
            await shows(f"Current order — {stage}")
        tmux.keys("r")
        await shows("No current order", f"resolved {order_id}")

        tmux.keys("l")
        await until(lambda: not tmux.alive(), "the terminal exits after log off", explain)

        async with UnitEventsReader(infrastructure, unit_id) as reader:
            events = await reader.read(6)
        assert [(e["type"], e.get("order_id")) for e in events] == [
            ("log_on", None), ("ack", order_id), ("en_route", order_id), ("on_scene", order_id),
            ("resolved", order_id), ("log_off", None),
        ], events
        assert events[0]["mode"] == "bike" and events[0]["home_street"] == street
        assert events[4]["outcome"] == "resolved"
        assert len({e["event_id"] for e in events}) == 6
        for e in events:
            unit_event_adapter.validate_python(e)
    finally:
        tmux.kill()
