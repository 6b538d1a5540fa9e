"""Logging set-up: structlog lines on stderr (key=value for people, or one JSON object each for a log collector), at
the level the settings give, with no personal data.

A log line is read by more people, and kept in more places, than the incident record: a failing handler's line
must not carry the message it failed on. So tracebacks are plain (no frame variables, where the message sits),
and every line, ours and the libraries' alike, is masked as a dead letter's excerpt is (processors/privacy.py),
for an exception's text may quote the message (a pydantic error quotes its input).
"""

from __future__ import annotations

import logging
import sys

import structlog

from processors.privacy import mask_personal_data


class MaskingFormatter(logging.Formatter):
    """The standard library's lines (aiokafka, faust, asyncpg), masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_personal_data(super().format(record))[0]


def masked(renderer):
    """`renderer`, its line masked: the values, the exception's text and the traceback alike (a JSON line stays
    JSON: masking replaces values with strings)."""

    def render(logger, name: str, event_dict) -> str:
        return mask_personal_data(renderer(logger, name, event_dict))[0]

    return render


def configure_logging(level: str, log_format: str = "console") -> None:
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig would: a host that set up logging keeps its own
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(level)
    if log_format == "json":
        # the traceback as text in the `exception` field (frames without their variables, as below)
        renderer = [structlog.processors.format_exc_info,
                    masked(structlog.processors.JSONRenderer(ensure_ascii=False))]
    else:
        # plain tracebacks: rich's, the default, print every frame's variables, and with them the message
        # being handled and the personal data in it
        renderer = [masked(structlog.dev.ConsoleRenderer(colors=False,
                                                         exception_formatter=structlog.dev.plain_traceback))]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
