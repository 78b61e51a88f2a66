"""Request parsing: the asset a path names, the parameters a route takes, the days, levels and
format a query asks for; or an error that says what is accepted."""

from __future__ import annotations

import difflib
import re
from datetime import date

import pandas as pd
from flask import request

from serving.answers import ServedModel
from serving.http import CSV, JSON, MAX_RANGE_DAYS

DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only
LEVEL_PATTERN = re.compile(r"[0-9]{1,3}")
ECHO_LIMIT = 40  # characters of a bad value quoted back in an error message


class ClientError(ValueError):
    """A client error (400); the message tells the client what is accepted."""


class UnknownAsset(LookupError):
    """A path names no served asset (404)."""


class AssetNamedOtherwise(LookupError):
    """A path names an asset otherwise than by its id (BTC, bitcoin): redirect to its id (301)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def asset_names(models: dict[str, ServedModel]) -> dict[str, str]:
    """Every name a served asset answers to, lowercased, and its id: the id itself, its name
    (bitcoin) and its symbol's base (BTC). A name two assets share is nobody's."""
    owners: dict[str, set[str]] = {}
    for key, served in models.items():
        for name in (key, served.metadata["name"], served.metadata["symbol"].split("/")[0]):
            owners.setdefault(name.lower(), set()).add(key)
    names = {name: keys.pop() for name, keys in owners.items() if len(keys) == 1}
    names.update({key: key for key in models})  # an id is always its own asset's
    return names


def known_assets(models: dict[str, ServedModel]) -> str:
    """The served assets as an error lists them: btc (Bitcoin, BTC), eth (Ethereum, ETH)."""
    return ", ".join(
        f"{key} ({served.metadata['name']}, {served.metadata['symbol'].split('/')[0]})"
        for key, served in models.items()
    )


def find_asset(models: dict[str, ServedModel], names: dict[str, str], asset: str) -> ServedModel:
    """The model of the asset the path names by its id; AssetNamedOtherwise when it names it by
    another name or case, UnknownAsset when by none."""
    served = models.get(asset)
    if served is not None:
        return served
    key = names.get(asset.lower())
    if key is None:
        raise UnknownAsset(asset)
    raise AssetNamedOtherwise(key)


def quote(text: str) -> str:
    """A user's value, shortened, for an error message (JSON escapes the rest)."""
    return repr(text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "...")


# The query parameters each route takes; any other is refused, but "_", the cache-buster that web
# libraries append (jQuery's cache: false), which is ignored.
FORECAST_PARAMETERS = ("date", "start", "end", "level", "format")
HISTORY_PARAMETERS = ("start", "end", "format")
IGNORED_PARAMETER = "_"
NAMED_UNKNOWN = 3  # unknown parameters named in an error; the rest are counted
# What to give instead of a repeated parameter (a repeated level is read as a list).
ONCE_INSTEAD = {
    "date": "for several days give a range, e.g. ?start=2024-06-01&end=2024-06-30",
    "start": "one range per request, e.g. ?start=2024-06-01&end=2024-06-30",
    "end": "one range per request, e.g. ?start=2024-06-01&end=2024-06-30",
    "format": "json or csv",
}


def check_parameters(args, accepted: tuple[str, ...]) -> None:
    """Refuse a query parameter the route does not take (a typo would otherwise pass silently)."""
    unknown = [name for name in args if name not in accepted and name != IGNORED_PARAMETER]
    if not unknown:
        return
    named = ", ".join(quote(name) for name in unknown[:NAMED_UNKNOWN])
    if len(unknown) > NAMED_UNKNOWN:
        named += f" and {len(unknown) - NAMED_UNKNOWN} more"
    close = difflib.get_close_matches(unknown[0], accepted, n=1, cutoff=0.5)  # day -> date
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    takes = f"this route takes {', '.join(accepted)}" if accepted else "this route takes none"
    plural = "s" if len(unknown) > 1 else ""
    raise ClientError(f"unknown query parameter{plural} {named}{hint}: {takes} (and _, ignored)")


def one_value(args, name: str) -> str | None:
    """The single value of query parameter `name`, or None when absent."""
    values = args.getlist(name)
    if len(values) > 1:
        instead = f": {ONCE_INSTEAD[name]}" if name in ONCE_INSTEAD else ""
        raise ClientError(f"give '{name}' once; got it {len(values)} times{instead}")
    return values[0] if values else None


def servable_day(text: str, name: str, first: date, last: date, what: str = "forecast") -> date:
    """The day `text` names, if it is a well-formed calendar day between first and last."""
    if not DAY_PATTERN.fullmatch(text):
        raise ClientError(f"'{name}' must be a day as YYYY-MM-DD, e.g. 2024-06-01; got {quote(text)}")
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise ClientError(f"{text} is not a calendar day ({error})") from error
    if not first <= day <= last:
        raise ClientError(f"no {what} for {day}: this model serves {first} to {last}")
    return day


def requested_day(args, served: ServedModel) -> str:
    """The single valid, servable `date` in the query string, as the ISO key of its answer."""
    text = one_value(args, "date")
    if text is None:
        raise ClientError("missing query parameter 'date': give one day as YYYY-MM-DD, e.g. ?date=2024-06-01")
    if text in served.answers:  # the common case, decided by one lookup
        return text
    return servable_day(text, "date", served.first_day, served.last_day).isoformat()


def requested_range(args, first: date, last: date, what: str = "forecast") -> list[str]:
    """The ISO days from `start` to `end` (inclusive), both required, at most MAX_RANGE_DAYS."""
    start_text, end_text = one_value(args, "start"), one_value(args, "end")
    if start_text is None or end_text is None:
        raise ClientError(
            "a range needs both 'start' and 'end' as YYYY-MM-DD, e.g. ?start=2024-06-01&end=2024-06-30"
        )
    start = servable_day(start_text, "start", first, last, what)
    end = servable_day(end_text, "end", first, last, what)
    if start > end:
        raise ClientError(f"'start' ({start}) is after 'end' ({end})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ClientError(
            f"at most {MAX_RANGE_DAYS} days per request; {start} to {end} is {(end - start).days + 1}"
        )
    return [day.date().isoformat() for day in pd.date_range(start, end, freq="D")]


def requested_levels(args, served: ServedModel) -> list[int] | None:
    """The interval levels asked for with `level`, ascending; None without `level`.

    level=50,95 and level=50&level=95 (what HTTP libraries send for a list) are the same request.
    """
    values = args.getlist("level")
    if not values:
        return None
    accepted = ", ".join(map(str, served.levels))
    levels = set()
    for part in ",".join(values).split(","):
        if not (LEVEL_PATTERN.fullmatch(part) and int(part) in served.levels):
            raise ClientError(
                f"'level' takes interval levels in percent among {accepted}, e.g. 50,95; got {quote(part)}"
            )
        levels.add(int(part))
    return sorted(levels)


FORMATS = {"json": JSON, "csv": CSV}  # ?format=: for links and spreadsheets, which cannot set Accept


def wants_csv() -> bool:
    """True when the client asks for CSV: with ?format=csv, or else by preferring it (Accept: text/csv).

    The query wins over Accept: a link or a spreadsheet's IMPORTDATA cannot choose its headers.
    """
    text = one_value(request.args, "format")
    if text is None:
        return request.accept_mimetypes.best_match([JSON, CSV], default=JSON) == CSV
    if text.lower() not in FORMATS:
        raise ClientError(f"'format' takes json or csv (or send Accept: text/csv); got {quote(text)}")
    return FORMATS[text.lower()] == CSV
