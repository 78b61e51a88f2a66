"""Cache validators: one ETag and Last-Modified for every data answer, and the 304 that uses them."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime

from flask import Response, current_app, request
from werkzeug.http import http_date, is_resource_modified

from artifact import trained_at
from serving.answers import ServedModel, compact_json
from serving.http import CACHE_MAX_AGE, CSV, JSON


@dataclass(frozen=True)
class CacheValidators:
    """The cache headers of every data answer, per media type, fixed for the life of the process."""

    etags: dict[str, str]  # media type -> ETag value (unquoted)
    last_modified: datetime  # when the newest model was trained
    headers: dict[str, list[tuple[str, str]]]  # media type -> headers of its 200 and 304 answers


def cache_validators(models: dict[str, ServedModel]) -> CacheValidators:
    """ETags that change whenever any served byte does (a retrained model, a new format), computed once."""
    digest = hashlib.sha256()
    for _, served in sorted(models.items()):
        digest.update(compact_json(served.metadata))
        days = served.days
        for table in (served.answers, days.short_answers, days.csv_rows, served.closes, served.close_rows):
            digest.update(b"".join(table.values()))
        for level in served.levels if len(served.levels) > 1 else ():  # one level: in the answers above
            digest.update(b"".join(days.level_parts[level].values()))
    version = digest.hexdigest()[:20]
    newest = max(trained_at(served.metadata) for served in models.values())
    etags = {JSON: f"{version}-json", CSV: f"{version}-csv"}
    headers = {
        mimetype: [
            ("Cache-Control", f"public, max-age={CACHE_MAX_AGE}"),
            ("ETag", f'"{etag}"'),
            ("Last-Modified", http_date(newest)),
            ("Vary", "Accept"),  # JSON or CSV at the same URL
        ]
        for mimetype, etag in etags.items()
    }
    return CacheValidators(etags, newest, headers)


def cacheable(validators: CacheValidators):
    """Decorate a view: its 200 answers get cache headers, or become an empty 304 when the client's
    copy is current (If-None-Match, or else If-Modified-Since)."""

    def decorate(view):
        @functools.wraps(view)
        def answer(*args, **kwargs):
            response = view(*args, **kwargs)
            response = current_app.make_response(response)  # a dict becomes Flask's JSON answer
            if response.status_code != 200 or response.mimetype not in validators.headers:
                return response
            headers = validators.headers[response.mimetype]
            if "format" in request.args:  # the query chose the media type: Accept changes nothing
                headers = [(name, value) for name, value in headers if name != "Vary"]
            etag = validators.etags[response.mimetype]
            if not is_resource_modified(request.environ, etag=etag, last_modified=validators.last_modified):
                return Response(status=304, headers=headers)
            response.headers.extend(headers)
            return response

        return answer

    return decorate
