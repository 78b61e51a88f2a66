"""Alpaca's key and secret never reach a log line, an exception or an error message.

requests names a header value it refuses (a key with a newline in it) in its exception, and
an error page may echo the request. redact() removes every form a secret takes in text: as is,
stripped, with its whitespace collapsed (errors.short() does that), as repr() and JSON escape
it, percent-encoded, and each of its whitespace-separated parts of MIN_PART characters or more
(a message cut at the newline). install() puts a filter on every handler of the root logger,
so every record is redacted whatever logger made it, with its traceback, and redacts what an
uncaught exception prints.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from urllib.parse import quote, quote_plus

SECRET_VARIABLES = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY")
REDACTED = "[redacted]"
MIN_PART = 4  # shorter parts of a secret are left alone: they would redact ordinary words


def secret_forms(environ=os.environ) -> list[str]:
    """Every form the secrets in the environment may take in a message, longest first."""
    forms: set[str] = set()
    for name in SECRET_VARIABLES:
        value = environ.get(name) or ""
        if not value.strip():
            continue
        variants = {value, value.strip(), " ".join(value.split())}
        variants |= {repr(value)[1:-1], json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)}
        forms |= variants | {part for part in value.split() if len(part) >= MIN_PART}
    return sorted((form for form in forms if form), key=len, reverse=True)


def redact(text: str, forms: list[str] | None = None) -> str:
    """`text` with every form of every secret replaced by [redacted]."""
    for form in secret_forms() if forms is None else forms:
        text = text.replace(form, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        forms = secret_forms()
        if not forms:
            return True
        record.msg, record.args = redact(record.getMessage(), forms), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), forms)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, forms)
        return True


def install() -> None:
    """Redact every record the root logger's handlers write, warnings and uncaught exceptions too."""
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())

    def print_redacted(kind, error, trace) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))

    sys.excepthook = print_redacted
