"""Log lines on stderr that read well both in journald and in a log file."""

from __future__ import annotations

import logging
import os

from lifelog.core.redact import ScrubbingFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("LIFELOG_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    if getattr(root, "_lifelog_configured", False):
        return
    handler = logging.StreamHandler()
    # Scrubbed: no secret (aw_api_key, a ping URL's token) reaches a log, even in a traceback.
    handler.setFormatter(ScrubbingFormatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level if level in logging._nameToLevel else "INFO")
    root._lifelog_configured = True  # type: ignore[attr-defined]
