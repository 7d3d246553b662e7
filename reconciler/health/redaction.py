"""Keeping keys out of the HTTP libraries' logs.

httpx logs every request's full URL at INFO, and some providers (Mapbox, Google Maps, Geoapify)
take the key in the query string. Their loggers are raised to WARNING, and a filter redacts
every query value of whatever httpx still logs, in case someone lowers the level again.
"""

from __future__ import annotations

import logging
import re

_QUERY_VALUE = re.compile(r"([?&][^=&\s\"'#]+=)[^&\s\"'#]*")
_TRANSPORT_LOGGERS = ("httpx", "httpcore", "aiohttp")


def redact_query_strings(text: str) -> str:
    """``...?access_token=pk.abc&x=1`` -> ``...?access_token=(sensitive)&x=(sensitive)``."""
    return _QUERY_VALUE.sub(r"\1(sensitive)", text)


class QueryRedactingFilter(logging.Filter):
    """Rewrites a record's message with every URL query value redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact_query_strings(message)
        record.args = ()
        return True


def quiet_transport_loggers() -> None:
    """Idempotently raise httpx/httpcore loggers to WARNING and attach the redacting filter."""
    for name in _TRANSPORT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
        if not any(isinstance(f, QueryRedactingFilter) for f in logger.filters):
            logger.addFilter(QueryRedactingFilter())
