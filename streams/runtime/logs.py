"""Logging set-up: structlog lines on stderr (key=value for people, or one JSON object each for a log collector), at
the level the settings give."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str, log_format: str = "console") -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if log_format == "json":
        # the traceback as text in the `exception` field (frames without their variables, as below)
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer(ensure_ascii=False)]
    else:
        # plain tracebacks: rich's, the default, print every frame's variables, and with them the message
        # being handled and the personal data in it
        renderer = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
