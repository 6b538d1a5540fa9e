"""Command intake: decide for one record of `dispatch.commands` whether it enters its district's work log (as a
`command` entry, decided there by processors/commands.py) or the dead-letter topic.

The command API (streams/gateway/commands.py) has authenticated the dispatcher and publishes only what it
validated; intake checks again, as it does every inbound record, since the topic is a door of its own.
"""

from __future__ import annotations


from processors.dead_letters import Rejected, provenance
from processors.geography import Geography
from processors.incidents import district_of
from processors.intake import Inbound, Limits, read_message
from processors.messages import DispatcherCommand, WorkItem

# the reason codes of intake.REASONS that a command can be refused with here, and the one of its own
REASONS = {
    "unknown_district": "a command for an incident whose id names no district served",
    "key_mismatch": "a command whose message key is not its incident's district",
}


def admit_command(record: Inbound, geography: Geography, limits: Limits) -> WorkItem | Rejected:
    command = read_message(record, limits, DispatcherCommand.model_validate)
    if isinstance(command, Rejected):
        return command
    district = district_of(command.incident_id)
    if district is None or district not in geography.districts:
        return Rejected("unknown_district", f"incident {command.incident_id!r} is not of a district served")
    key = (record.key or b"").decode("utf-8", "replace")
    if key != district:
        # the topic is keyed by district so that one district's commands stay in order on one partition
        return Rejected("key_mismatch", f"message key {key!r} is not the district {district!r}")
    return WorkItem(kind="command", district=district, at=record.received_at, command=command,
                    provenance=provenance(record))
