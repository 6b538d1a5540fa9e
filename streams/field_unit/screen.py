"""The terminal's screen, painted with rich: the unit's header, the current order (with its ack countdown and
progress), the other orders held, the log, and the key help. `render` reads a `FieldUnit` and changes nothing."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streams.field_unit.model import _RANK, HELP, STAGE_LABEL, STAGES, FieldUnit, utc_now


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
    # citizens' text is plain text: a plain str would be read as rich markup (`[/]` in an address kills the painter)
    grid.add_row("where", Text(f"{o.address + '   ' if o.address else ''}({o.lat:.5f}, {o.lon:.5f})"))
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
    grid.add_row("joint with", Text(", ".join(o.joint_with) if o.joint_with else "—"))
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
            table.add_row(*(Text(cell) for cell in (o.order_id, o.category, f"P{o.priority}", o.role,
                                                    STAGE_LABEL[held.stage], o.address or f"{o.lat:.4f}, {o.lon:.4f}")))
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
