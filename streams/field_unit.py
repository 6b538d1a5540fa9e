"""The field-unit terminal (`patrol unit UNIT_ID`): an officer's screen of the unit's dispatch orders,
whose single keys report acknowledge / en route / on scene / resolved / decline / log off on unit.events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import TypeAdapter, ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from processors.messages import (
    SCHEMA_VERSION,
    DispatchOrder,
    Identifier,
    LogOff,
    LogOn,
    OrderStatus,
    Resolved,
    UnitEvent,
    unit_event_adapter,
)
from streams.consumer_loop import partitions_of
from streams.settings import Settings
from streams.topics import DISPATCH_ORDERS, UNIT_EVENTS

# --- the separable part: what the terminal knows and what a key means -------------------------

STAGES = ("assigned", "acknowledged", "en_route", "on_scene", "resolved")
STAGE_LABEL = {s: s.replace("_", " ") for s in STAGES}
_RANK = {s: i for i, s in enumerate(STAGES)}

HELP = "a acknowledge  e en route  s on scene  r resolved  d decline  l log off  q quit"


@dataclass(frozen=True)
class _Action:
    event_type: str
    verb: str
    # The unit's lifecycle is ack → en route → on scene → resolved (DESIGN.md);
    # the terminal refuses steps out of that order so the district core never
    # has to guess what a skipped step meant. Walking up to an incident one is
    # already at (no en route) is real, so on scene may follow ack directly.
    allowed_from: tuple[str, ...]
    refusal: str


_ACTIONS = {
    "a": _Action("ack", "acknowledge", ("assigned",), "{order} is already {stage}"),
    "e": _Action("en_route", "set en route", ("acknowledged",), "{order} is {stage}: acknowledge (a) before en route"),
    "s": _Action("on_scene", "set on scene", ("acknowledged", "en_route"),
                 "{order} is {stage}: acknowledge (a) before on scene"),
    "r": _Action("resolved", "resolve", ("on_scene",), "{order} is {stage}: set on scene (s) before resolving"),
    "d": _Action("decline", "decline", ("assigned", "acknowledged", "en_route"),
                 "{order} is {stage}: resolve (r) it rather than decline"),
}
_EVENT_STAGE = {"ack": "acknowledged", "en_route": "en_route", "on_scene": "on_scene"}
_STAGE_REFUSALS = {  # a refusal worded for an order that has already gone past the step
    ("a", "en_route"): "{order} is already {stage}",
    ("a", "on_scene"): "{order} is already {stage}",
    ("e", "en_route"): "{order} is already {stage}",
    ("e", "on_scene"): "{order} is already {stage}",
    ("s", "on_scene"): "{order} is already {stage}",
}

_unit_id_adapter: TypeAdapter[str] = TypeAdapter(Identifier)


def validate_unit_id(unit_id: str) -> str:
    """The unit id as the contract allows it (it becomes the key and part of every event id)."""
    try:
        return _unit_id_adapter.validate_python(unit_id)
    except ValidationError as exc:
        raise ValueError(f"unit id {unit_id!r}: {_first_error(exc)}") from None


def new_event_id(unit_id: str) -> str:
    # unit id prefix keeps ids readable in the audit log; truncated so the id stays a valid Identifier
    return f"{unit_id[:100]}-{uuid.uuid4().hex[:12]}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class HeldOrder:
    order: DispatchOrder
    stage: str
    seq: int  # arrival order on dispatch.orders: the newest active order is the current one


@dataclass(frozen=True)
class Press:
    """What one key did: the event to publish (None: nothing to send), what to tell the officer, whether to exit."""

    event: UnitEvent | None
    message: str
    exit: bool = False


@dataclass(frozen=True)
class LogLine:
    at: datetime
    text: str
    level: str = "info"  # info | warning


@dataclass
class FieldUnit:
    """One unit's view of its work, changed only by orders read and events sent or read back; no I/O."""

    unit_id: str
    orders: dict[str, HeldOrder] = field(default_factory=dict)
    profile: LogOn | None = None
    status: str = "assumed logged on"
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=50))
    # Orders finished (resolved, declined, cancelled) stay remembered so that a
    # replay of dispatch.orders from the beginning does not resurrect them.
    closed: dict[str, str] = field(default_factory=dict)
    # Progress read back from unit.events for an order not yet read from
    # dispatch.orders (the two topics are read side by side, in no fixed order).
    early: dict[str, str] = field(default_factory=dict)
    own_event_ids: set[str] = field(default_factory=set)
    _seq: int = 0

    # -- queries --

    @property
    def current(self) -> HeldOrder | None:
        return max(self.orders.values(), key=lambda h: h.seq, default=None)

    @property
    def others(self) -> list[HeldOrder]:
        current = self.current
        return sorted((h for h in self.orders.values() if h is not current), key=lambda h: -h.seq)

    def note(self, text: str, level: str = "info", at: datetime | None = None) -> None:
        self.log.append(LogLine(at or utc_now(), text, level))

    # -- inputs --

    def apply_order(self, order: DispatchOrder, at: datetime | None = None) -> str | None:
        """Take one record of dispatch.orders; returns what the officer is told (None: nothing new)."""
        oid = order.order_id
        if order.unit_id != self.unit_id:
            message = f"ignored order {oid}: addressed to {order.unit_id}, not {self.unit_id}"
            self.note(message, "warning", at)
            return message
        if order.kind == "cancel":
            self.closed[oid] = "cancelled"
            self.early.pop(oid, None)
            if self.orders.pop(oid, None) is None:
                return None  # nothing on screen to take away (e.g. already resolved here)
            message = f"order {oid} cancelled by command centre"
            self.note(message, "warning", at)
            return message
        if oid in self.closed:
            return None  # a replayed order this unit has already finished
        held = self.orders.get(oid)
        if held is not None:
            held.order = order  # a re-issue (e.g. new ETA): keep the progress made
            message = f"order {oid} updated"
        else:
            self._seq += 1
            self.orders[oid] = HeldOrder(order, self.early.pop(oid, "assigned"), self._seq)
            where = order.address or f"{order.lat:.5f}, {order.lon:.5f}"
            message = f"new order {oid}: {order.category} P{order.priority} {order.role} at {where}"
        self.note(message, "info", at)
        return message

    def press(self, key: str, at: datetime | None = None, event_id: Callable[[str], str] = new_event_id) -> Press:
        """What `key` means now. Changes nothing: the caller publishes the event, then applies it."""
        key = key.lower()
        at = at or utc_now()
        if key == "q":
            return Press(None, "terminal closed (no event sent)", exit=True)
        if key == "l":
            event = LogOff(schema_version=SCHEMA_VERSION, event_id=event_id(self.unit_id), unit_id=self.unit_id,
                           at=at, type="log_off")
            return Press(event, f"{self.unit_id} logged off", exit=True)
        action = _ACTIONS.get(key)
        if action is None:
            return Press(None, f"unknown key {key!r} — {HELP}")
        held = self.current
        if held is None:
            return Press(None, f"no current order to {action.verb}")
        oid = held.order.order_id
        if held.stage not in action.allowed_from:
            refusal = _STAGE_REFUSALS.get((key, held.stage), action.refusal)
            return Press(None, refusal.format(order=oid, stage=STAGE_LABEL[held.stage]))
        common = dict(schema_version=SCHEMA_VERSION, event_id=event_id(self.unit_id), unit_id=self.unit_id, at=at,
                      order_id=oid)
        if action.event_type == "resolved":
            return Press(Resolved(type="resolved", outcome="resolved", **common), f"resolved {oid}")
        event = OrderStatus(type=action.event_type, **common)
        done = {"ack": "acknowledged", "en_route": "en route to", "on_scene": "on scene at", "decline": "declined"}
        return Press(event, f"{done[action.event_type]} {oid}")

    def apply_event(self, event: UnitEvent) -> None:
        """Take one of this unit's events — just sent, or read back from unit.events. Applying twice is harmless."""
        if event.type == "log_on":
            self.profile, self.status = event, "logged on"
        elif event.type == "log_off":
            self.status = "logged off"
        elif event.type in ("resolved", "decline"):
            self.closed[event.order_id] = event.type
            self.orders.pop(event.order_id, None)
            self.early.pop(event.order_id, None)
        elif event.type in _EVENT_STAGE:
            stage = _EVENT_STAGE[event.type]
            held = self.orders.get(event.order_id)
            if held is not None:
                # forward only: a read-back of an older step must not undo a newer one
                if _RANK[stage] > _RANK[held.stage]:
                    held.stage = stage
            elif event.order_id not in self.closed:
                if _RANK[stage] > _RANK[self.early.get(event.order_id, "assigned")]:
                    self.early[event.order_id] = stage

    def read_back(self, event: UnitEvent) -> None:
        """An event of this unit read from unit.events: ours from this session, or history to restore from."""
        self.apply_event(event)
        if event.event_id not in self.own_event_ids:
            order = getattr(event, "order_id", None)
            self.note(f"from unit.events: {event.type}" + (f" {order}" if order else ""))


def build_log_on(unit_id: str, *, agency: str | None, kind: str, street: str | None, mode: str,
                 lat: float | None, lon: float | None, district: str, delegations: list[str] | None,
                 at: datetime | None = None) -> LogOn:
    """The log_on event for the command-line profile; ValueError names what is missing or wrong."""
    missing = [name for name, value in (("--agency", agency), ("--street", street), ("--lat", lat), ("--lon", lon))
               if value is None]
    if missing:
        raise ValueError(f"--log-on needs {', '.join(missing)}")
    try:
        return LogOn(schema_version=SCHEMA_VERSION, event_id=new_event_id(unit_id), unit_id=unit_id,
                     at=at or utc_now(), type="log_on", agency=agency, kind=kind, district=district,
                     home_street=street, mode=mode, delegations=delegations or [], lat=lat, lon=lon)
    except ValidationError as exc:
        raise ValueError(f"log_on: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "value"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg')}{more}"


# --- the screen ---------------------------------------------------------------------------------


def _clock(at: datetime) -> str:
    # the officer reads local time; the wire carries UTC
    return at.astimezone().strftime("%H:%M:%S")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"


def _progress(stage: str) -> Text:
    text = Text()
    for i, s in enumerate(STAGES):
        if i:
            text.append(" → ", style="dim")
        if _RANK[s] < _RANK[stage]:
            text.append(f"{STAGE_LABEL[s]} ✓", style="green")
        elif s == stage:
            text.append(f"[{STAGE_LABEL[s]}]", style="bold yellow")
        else:
            text.append(STAGE_LABEL[s], style="dim")
    return text


def _current_panel(state: FieldUnit, now: datetime) -> Panel:
    held = state.current
    if held is None:
        return Panel(Text("No current order — waiting for dispatch.orders", style="dim"), title="Current order",
                     title_align="left")
    o = held.order
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("order", Text.assemble((o.order_id, "bold"), f"   incident {o.incident_id}"))
    grid.add_row("task", Text.assemble((o.category, "bold"), f"   P{o.priority}   agency {o.agency}   role ",
                                       (o.role.upper(), "bold magenta" if o.role == "lead" else "magenta")))
    grid.add_row("where", f"{o.address + '   ' if o.address else ''}({o.lat:.5f}, {o.lon:.5f})")
    grid.add_row("eta", _span(o.eta_s) if o.eta_s is not None else "—")
    if o.ack_by is not None:
        deadline = o.ack_by if o.ack_by.tzinfo else o.ack_by.replace(tzinfo=timezone.utc)
        left = (deadline - now).total_seconds()
        if held.stage != "assigned":
            ack = Text(f"{_clock(deadline)} (acknowledged)", style="dim")
        elif left >= 0:
            ack = Text(f"{_clock(deadline)} (in {_span(left)})", style="bold yellow" if left < 30 else "")
        else:
            ack = Text(f"{_clock(deadline)} (OVERDUE by {_span(left)})", style="bold red")
        grid.add_row("ack by", ack)
    grid.add_row("joint with", ", ".join(o.joint_with) if o.joint_with else "—")
    grid.add_row("issued", _clock(o.issued_at if o.issued_at.tzinfo else o.issued_at.replace(tzinfo=timezone.utc)))
    grid.add_row("progress", _progress(held.stage))
    return Panel(grid, title=f"Current order — {STAGE_LABEL[held.stage].upper()}", title_align="left",
                 border_style="yellow" if held.stage == "assigned" else "green")


def render(state: FieldUnit, now: datetime | None = None, log_lines: int = 8) -> RenderableType:
    now = now or utc_now()
    status_style = {"logged on": "bold green", "logged off": "bold red"}.get(state.status, "yellow")
    header = Text.assemble((f" UNIT {state.unit_id} ", "bold reverse"), "  ", (state.status.upper(), status_style))
    if state.profile is not None:
        p = state.profile
        header.append(f"   {p.agency} {p.kind}, {p.mode}, {p.district}/{p.home_street}")
        if p.delegations:
            header.append(f", delegated: {', '.join(p.delegations)}")
    header.append(f"   {_clock(now)}", style="dim")

    others = state.others
    if others:
        table = Table.grid(padding=(0, 2))
        for held in others[:5]:
            o = held.order
            table.add_row(o.order_id, o.category, f"P{o.priority}", o.role, STAGE_LABEL[held.stage],
                          o.address or f"{o.lat:.4f}, {o.lon:.4f}")
        if len(others) > 5:
            table.add_row(f"… and {len(others) - 5} more", "", "", "", "", "")
        held_panel = Panel(table, title=f"Other orders held ({len(others)})", title_align="left")
    else:
        held_panel = Panel(Text("none", style="dim"), title="Other orders held (0)", title_align="left")

    log = Text()
    for line in list(state.log)[-log_lines:]:
        if log:
            log.append("\n")
        log.append(f"{_clock(line.at)}  ", style="dim")
        log.append(line.text, style="yellow" if line.level == "warning" else "")
    log_panel = Panel(log or Text("—", style="dim"), title="Log", title_align="left")

    keys = Text(f" keys: {HELP}", style="bold cyan")
    return Group(header, _current_panel(state, now), held_panel, log_panel, keys)


# --- the I/O loop -------------------------------------------------------------------------------


class TerminalError(RuntimeError):
    """The terminal cannot run (e.g. the broker is unreachable); the message is for the officer."""


_STOP = object()  # put on the key queue by SIGTERM / SIGHUP: leave as `q` would, without an event


class _ScreenLog(logging.Handler):
    """Library warnings (aiokafka reconnects, …) go to the on-screen log: stderr would tear the live screen."""

    def __init__(self, state: FieldUnit, level: int):
        super().__init__(level)
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.state.note(f"{record.levelname.lower()} {record.name}: {record.getMessage()}"[:300], "warning")
        except Exception:  # a log line must never bring the terminal down
            pass


@contextmanager
def _screen_logging(state: FieldUnit, level_name: str) -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    level = max(logging.WARNING, logging.getLevelName(level_name))
    root.handlers = [_ScreenLog(state, level)]
    root.setLevel(level)
    try:
        yield
    finally:
        root.handlers, root.level = saved_handlers, saved_level


# An escape sequence: CSI (ESC [ parameters, intermediates, final byte: arrows, F5 and up, …),
# SS3 (ESC O and one byte: F1-F4, arrows in application mode), or ESC and one byte (Alt-key).
_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]?|O.?|.)?", re.DOTALL)


def keys_in(data: bytes) -> list[str]:
    """The keys in one read of the keyboard. Arrow and function keys mean nothing here and are
    dropped, but only they: a key typed right after one often arrives in the same read."""
    return [char for char in _ESCAPE.sub(b"", data).decode(errors="ignore") if char.isprintable()]


@contextmanager
def _keyboard(queue: asyncio.Queue, state: FieldUnit) -> Iterator[None]:
    """Single keys from stdin without Enter (cbreak mode on a terminal), put on `queue` by the event loop."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    saved = None
    if fd >= 0 and os.isatty(fd):
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)  # keeps ISIG, so Ctrl-C still interrupts

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            state.note("keyboard closed (end of input); Ctrl-C to leave", "warning")
            return
        for key in keys_in(data):
            queue.put_nowait(key)

    reading = False
    try:
        if fd >= 0:
            try:
                loop.add_reader(fd, readable)
                reading = True
            except (OSError, ValueError):  # e.g. stdin is /dev/null or a regular file
                state.note("no keyboard: stdin cannot be read; Ctrl-C to leave", "warning")
        yield
    finally:
        if reading:
            loop.remove_reader(fd)
        if saved is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _assign_all_partitions(consumer: AIOKafkaConsumer, state: FieldUnit, redraw: Callable[[], None]):
    # No consumer group: every terminal reads every order from the beginning on
    # its own, and Tansu's slow group joins would delay the first screen by seconds.
    warned = False
    while True:
        partitions = await partitions_of(consumer, DISPATCH_ORDERS, UNIT_EVENTS)
        if any(tp.topic == DISPATCH_ORDERS for tp in partitions):
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            return
        if not warned:
            state.note(f"waiting for topic {DISPATCH_ORDERS} to exist (is a worker running?)", "warning")
            redraw()
            warned = True
        await asyncio.sleep(2.0)


async def _follow(consumer: AIOKafkaConsumer, state: FieldUnit, redraw: Callable[[], None]) -> None:
    """Read this unit's orders (and, to restore progress after a restart, its own events) from the beginning."""
    key = state.unit_id.encode()
    await _assign_all_partitions(consumer, state, redraw)
    while True:
        try:
            batches = await consumer.getmany(timeout_ms=1000)
        except KafkaError as exc:
            state.note(f"reading orders failed: {exc}; retrying", "warning")
            redraw()
            await asyncio.sleep(1.0)
            continue
        for tp, records in batches.items():
            for record in records:
                if record.key != key:
                    continue
                where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                try:
                    if record.value is None:
                        raise ValueError("empty record")
                    if tp.topic == DISPATCH_ORDERS:
                        state.apply_order(DispatchOrder.model_validate_json(record.value))
                    else:
                        state.read_back(unit_event_adapter.validate_json(record.value))
                except ValidationError as exc:
                    state.note(f"skipped unreadable record {where}: {_first_error(exc)}", "warning")
                except ValueError as exc:
                    state.note(f"skipped unreadable record {where}: {exc}", "warning")
        if batches:
            redraw()


async def _send(producer: AIOKafkaProducer, event: UnitEvent) -> None:
    await producer.send_and_wait(UNIT_EVENTS, event.to_json_bytes(), key=event.unit_id.encode())


async def run_terminal(settings: Settings, unit_id: str, log_on: LogOn | None = None,
                       console: Console | None = None) -> int:
    """Run the terminal until `q`, `l`, SIGTERM or SIGHUP; returns the exit code. Raises TerminalError."""
    console = console or Console()
    state = FieldUnit(unit_id)
    options = settings.kafka_client_options()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, **settings.producer_options())
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, **options)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    on_screen = False
    try:
        with _screen_logging(state, settings.log_level):
            try:
                await producer.start()
                await consumer.start()
                if log_on is not None:
                    state.own_event_ids.add(log_on.event_id)
                    await _send(producer, log_on)
            except KafkaError as exc:
                raise TerminalError(f"cannot reach the broker at {settings.kafka_bootstrap}: {exc}") from None
            if log_on is not None:
                state.apply_event(log_on)
                state.note(f"logged on as {log_on.agency} {log_on.kind} ({log_on.mode}), home street {log_on.home_street}")

            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, queue.put_nowait, _STOP)
            on_screen = True
            with _keyboard(queue, state), Live(render(state), console=console, screen=True,
                                               auto_refresh=False) as live:
                # Redrawn from this thread only: rich's auto-refresh thread would
                # read the state while the loop changes it.
                dirty = asyncio.Event()

                def redraw() -> None:
                    dirty.set()

                async def painter() -> None:
                    while True:
                        # Not wait_for: on 3.11 it loses a cancel that meets a set event.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(1.0):  # 1 s: the ack countdown ticks
                                await dirty.wait()
                        dirty.clear()
                        live.update(render(state), refresh=True)

                tasks = [asyncio.create_task(_follow(consumer, state, redraw)), asyncio.create_task(painter())]
                try:
                    return await _keys(queue, state, producer, redraw)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        for client in (consumer, producer):  # also after a failed start, which leaves connections behind
            try:
                await client.stop()
            except Exception:
                pass
        if on_screen:  # the live screen is gone with its alternate buffer: say where the unit was left
            console.print(_farewell(state))


async def _keys(queue: asyncio.Queue, state: FieldUnit, producer: AIOKafkaProducer,
                redraw: Callable[[], None]) -> int:
    # One key at a time, each published before the next is read: the events
    # reach unit.events in the order they were pressed.
    while True:
        key = await queue.get()
        if key is _STOP:
            return 0
        press = state.press(key)
        if press.event is not None:
            state.own_event_ids.add(press.event.event_id)
            try:
                await _send(producer, press.event)
            except KafkaError as exc:
                state.note(f"NOT SENT ({type(exc).__name__}: {exc}) — press {key!r} again", "warning")
                redraw()
                continue
            state.apply_event(press.event)
        state.note(press.message, "info" if press.event is not None or press.exit else "warning")
        redraw()
        if press.exit:
            return 0


def _farewell(state: FieldUnit) -> str:
    held = len(state.orders)
    orders = f"{held} order{'s' if held != 1 else ''} still held" if held else "no orders held"
    return f"unit {state.unit_id}: {state.status}, {orders}"
