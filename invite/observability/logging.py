"""structlog set-up: one JSON line per event, carrying the request id and tenant bound in contextvars.

Everything goes through the standard library's logging (uvicorn's own lines too), so there is
one stream with one format. Never pass tokens, secrets or session strings to a logger.
"""

from __future__ import annotations

import logging
import sys

import structlog

from invite.kernel.settings import Settings

_HANDLER_NAME = "invite"


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the root logger; safe to call again (replaces only its own handler)."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # below the level, an event is dropped before anything is done to it (a request's log line
        # costs its time stamp and rendering otherwise)
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # initdb's chatter on first start
    # uvicorn's access lines would repeat ours without the request id
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
