"""`patrol roster plan`: the roster's verbs, mounted on the CLI by `add_commands`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def add_commands(app: typer.Typer) -> None:
    roster_app = typer.Typer(help="The brigade's roster: shifts planned from demand.", no_args_is_help=True)
    app.add_typer(roster_app, name="roster")

    @roster_app.command("plan")
    def roster_plan(
        days: int = typer.Option(14, min=1, help="days of (simulated) history to read the demand from"),
        write: Optional[Path] = typer.Option(
            None, help="write the roster with each unit's planned shift start (shift_start_h) here, as JSON lines"),
    ) -> None:
        """Propose each unit's 12-hour shift from demand per agency and hour (simulated history), and show the cover."""
        import json

        from rich.table import Table

        from streams.cli_support import _reference_or_exit, _settings, console
        from streams.reference import load_roster
        from streams.simulation.roster_plan import HISTORY_SEEDS, coverage, demand, plan_shifts, replanned

        settings = _settings()
        catalogue, geography = _reference_or_exit(settings)
        roster = load_roster()
        seeds = tuple(range(HISTORY_SEEDS[0], HISTORY_SEEDS[0] + days))
        work = demand(catalogue, geography, roster, seeds)
        starts = plan_shifts(roster, work)
        cover = coverage(roster, starts)
        table = Table(title=f"Officer-hours of work per hour ({days} days of simulated history) : units on duty, planned")
        table.add_column("hour", justify="right")
        for agency in sorted(cover):
            table.add_column(agency, justify="right")
        for hour in range(24):
            table.add_row(f"{hour:02d}", *(f"{work.get(a, [0.0] * 24)[hour]:.1f} : {cover[a][hour]}" for a in sorted(cover)))
        console.print(table)
        if write is not None:
            write.parent.mkdir(parents=True, exist_ok=True)
            write.write_text("".join(json.dumps(u, ensure_ascii=False) + "\n" for u in replanned(roster, starts)),
                             encoding="utf-8")
            console.print(f"wrote {len(roster)} units with their planned shifts to {write}")
