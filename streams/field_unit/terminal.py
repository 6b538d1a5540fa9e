"""The terminal itself (`run_terminal`): the device signed in to the field API (and the log_on sent), library
logging moved to the on-screen log, the live screen repainted from the event loop, the follower and the key loop run until the
officer leaves, and a farewell line once the screen is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live

from processors.messages import LogOn
from streams.field_unit.client import FieldApiClient, NotSent
from streams.field_unit.keys import _STOP, _keyboard, _keys
from streams.field_unit.model import FieldUnit
from streams.field_unit.screen import render
from streams.settings import Settings


class TerminalError(RuntimeError):
    """The terminal cannot run (e.g. the field API is unreachable, or refuses the device or its log-on); the
    message is for the officer."""


class _ScreenLog(logging.Handler):
    """Library warnings (httpx, …) go to the on-screen log: stderr would tear the live screen."""

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


async def run_terminal(settings: Settings, unit_id: str, log_on: LogOn | None = None,
                       console: Console | None = None) -> int:
    """Run the terminal until `q`, `l`, SIGTERM or SIGHUP; returns the exit code. Raises TerminalError."""
    console = console or Console()
    state = FieldUnit(unit_id)
    if not (settings.field_device_id and settings.field_device_secret):
        raise TerminalError("this device has no credential: set PATROL_FIELD_DEVICE_ID and PATROL_FIELD_DEVICE_SECRET "
                            "(`patrol field-credentials issue`)")
    client = FieldApiClient(settings.field_api_url, settings.field_device_id,
                            settings.field_device_secret.get_secret_value())
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    on_screen = False
    try:
        with _screen_logging(state, settings.log_level):
            try:
                session = await client.sign_in()
                if session["unit_id"] != unit_id:
                    raise NotSent(f"this device is bound to unit {session['unit_id']}, not {unit_id}")
                if log_on is not None:
                    state.own_event_ids.add(log_on.event_id)
                    await client.send(log_on)
            except NotSent as exc:
                raise TerminalError(str(exc)) from None
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

                tasks = [asyncio.create_task(client.follow(state, redraw)), asyncio.create_task(painter())]
                try:
                    return await _keys(queue, state, client, redraw)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await client.close()
        if on_screen:  # the live screen is gone with its alternate buffer: say where the unit was left
            console.print(_farewell(state))


def _farewell(state: FieldUnit) -> str:
    held = len(state.orders)
    orders = f"{held} order{'s' if held != 1 else ''} still held" if held else "no orders held"
    return f"unit {state.unit_id}: {state.status}, {orders}"
