"""The field-unit terminal (`patrol unit UNIT_ID`): an officer's screen of the unit's dispatch orders,
whose single keys report acknowledge / en route / on scene / resolved / decline / log off on unit.events.

The package, by role:

- `model`     the unit's state and what a key means (no I/O): `FieldUnit`, `build_log_on`, `validate_unit_id`
- `screen`    the screen painted with rich: `render`
- `keys`      the keyboard (cbreak stdin, `keys_in`) and the key loop that publishes each key's event
- `client`    the field API's client: signing the device in, following the unit's orders, sending its events
- `terminal`  `run_terminal`: the clients, the live screen and the loops put together
"""

from __future__ import annotations

from streams.field_unit.keys import keys_in
from streams.field_unit.model import (
    HELP,
    STAGE_LABEL,
    STAGES,
    FieldUnit,
    HeldOrder,
    LogLine,
    Press,
    build_log_on,
    new_event_id,
    utc_now,
    validate_unit_id,
)
from streams.field_unit.screen import render
from streams.field_unit.terminal import TerminalError, run_terminal

__all__ = [
    "HELP", "STAGES", "STAGE_LABEL", "FieldUnit", "HeldOrder", "LogLine", "Press", "TerminalError", "build_log_on",
    "keys_in", "new_event_id", "render", "run_terminal", "utc_now", "validate_unit_id",
]
