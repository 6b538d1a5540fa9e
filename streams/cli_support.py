"""What the `patrol` verbs share: the consoles, the settings with logging configured, and the checks that end a
verb with a reason (a catalogue, geography or register that cannot be read, a data directory that cannot be
written, a missing extra) instead of a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.console import Console

from streams.settings import Settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    from streams.runtime.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _extra_or_exit(extra: str, *modules: str) -> None:
    """Exit saying which extra to install when a verb's libraries are not (a worker's install leaves them out)."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        err_console.print(f"this verb needs {', '.join(missing)}: pip install 'patrol-dispatch[{extra}]'")
        raise typer.Exit(2)


def _data_dir_or_exit(settings: Settings) -> None:
    """Create PATROL_DATA_DIR with its parents (the embedded broker's and database's logs go there), or exit
    saying why it cannot be: a traceback from deep inside the broker's start would not."""
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.data_dir):
            pass
    except OSError as exc:
        err_console.print(f"[red]refusing to start:[/] PATROL_DATA_DIR {settings.data_dir} cannot be written "
                          f"({exc.strerror or exc}): set PATROL_DATA_DIR to a directory that can")
        raise typer.Exit(2)


def _reference_or_exit(settings: Settings, geography: bool = True):
    from processors.catalogue import CatalogueError
    from processors.geography import GeographyError
    from streams.reference import load_catalogue, load_geography

    try:
        return load_catalogue(settings), (load_geography(settings) if geography else None)
    except (CatalogueError, GeographyError, OSError) as exc:
        err_console.print(f"[red]refusing to start:[/] {exc}")
        raise typer.Exit(2)


def _register_or_exit(settings: Settings):
    from processors.register import RegisterError
    from streams.reference import load_register

    try:
        return load_register(settings)
    except (RegisterError, OSError) as exc:
        err_console.print(f"[red]refusing to start:[/] {exc}")
        raise typer.Exit(2)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


# the field API's verbs: `patrol field`, `patrol field-credentials issue|revoke`
