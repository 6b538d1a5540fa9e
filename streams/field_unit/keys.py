"""The terminal's keyboard: single keys from stdin without Enter (cbreak mode), escape sequences (arrows, function
keys) dropped, and the key loop that publishes each key's event before reading the next."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from streams.field_unit.client import FieldApiClient, NotSent
from streams.field_unit.model import FieldUnit


_STOP = object()  # put on the key queue by SIGTERM / SIGHUP: leave as `q` would, without an event


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


async def _keys(queue: asyncio.Queue, state: FieldUnit, client: FieldApiClient,
                redraw: Callable[[], None]) -> int:
    # One key at a time, each taken by the field API before the next is read: the events
    # reach unit.events in the order they were pressed.
    while True:
        key = await queue.get()
        if key is _STOP:
            return 0
        press = state.press(key)
        if press.event is not None:
            state.own_event_ids.add(press.event.event_id)
            try:
                await client.send(press.event)
            except NotSent as exc:
                state.note(f"NOT SENT ({exc}) — press {key!r} again", "warning")
                redraw()
                continue
            state.apply_event(press.event)
        state.note(press.message, "info" if press.event is not None or press.exit else "warning")
        redraw()
        if press.exit:
            return 0
