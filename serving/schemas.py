"""The OpenAPI document's shapes: query parameters, answers and their headers (pydantic models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model

from artifact import LEVELS
from serving.http import AS_OF_HEADER, CACHE_MAX_AGE, CSV, HORIZON_HEADER, MAX_RANGE_DAYS, SOURCE_HEADER


def parses_own_query(view):
    """Let flask-openapi3 document the view's query and path models while the view parses them.

    Its own validation reads only the first of repeated parameters, answers 422 in another
    shape, and rebuilds a JSON schema on every request: too loose and too slow for /bitcoin.
    """
    view.__delay_validate_request__ = True
    return view


def optional_param(description: str, example: str | None = None, value_format: str | None = None) -> Any:
    """A documented optional query parameter: a plain string, without pydantic's null default."""

    def shape(schema: dict) -> None:
        schema.pop("default", None)
        schema.update(
            **({"format": value_format} if value_format else {}), **({"example": example} if example else {})
        )

    return Field(None, description=description, json_schema_extra=shape)


def optional_day(description: str, example: str | None = None) -> Any:
    """A documented optional day parameter (YYYY-MM-DD)."""
    return optional_param(description, example, "date")


FORMAT_DOC = (
    "json or csv: the answer's format, for links and spreadsheets that cannot send an Accept header. "
    "It wins over Accept; without it, Accept: text/csv gives CSV and anything else JSON."
)


class ForecastQuery(BaseModel):
    # Documentation only: the view parses the query itself (see parses_own_query).
    date: str = optional_day(
        "One UTC day to forecast, YYYY-MM-DD, within the model's servable range (see /models).", "2024-06-01"
    )
    # No examples for start and end: Swagger UI fills examples in, and a date with a range is a 400.
    start: str = optional_day(
        f"First day of a range (with 'end'; at most {MAX_RANGE_DAYS} days), YYYY-MM-DD, e.g. 2024-06-01."
    )
    end: str = optional_day("Last day of a range (with 'start'), YYYY-MM-DD, e.g. 2024-06-30.")
    level: str = optional_param(
        "Interval levels in percent, comma-separated or repeated (level=50&level=95), among "
        + ", ".join(map(str, LEVELS))
        + " (each calibrated; see /models). Without it: the 80% interval as prediction_low and "
        "prediction_high; with it: an 'intervals' list (CSV: low_L and high_L columns). E.g. 50,95.",
    )  # no example: Swagger UI would send it with every try
    format: str = optional_param(FORMAT_DOC)


class HistoryQuery(BaseModel):
    start: str = Field(
        description=f"First day (at most {MAX_RANGE_DAYS} days with 'end'), YYYY-MM-DD.",
        json_schema_extra={"format": "date", "example": "2024-06-01"},
    )
    end: str = Field(
        description="Last day, YYYY-MM-DD.", json_schema_extra={"format": "date", "example": "2024-06-30"}
    )
    format: str = optional_param(FORMAT_DOC)


def asset_path_model(assets: list[str], known: str) -> type[BaseModel]:
    """The documented `asset` path parameter: one of the served assets' ids."""
    description = (
        f"The asset's id: {', '.join(assets)}. Its name or symbol in any case, or the id in another "
        f"case, redirects (301) to the id: {known}."
    )
    return create_model("AssetPath", asset=(Literal[tuple(assets)], Field(description=description)))


HTTP_DATE = Field(
    description="The day answered as an HTTP date (00:00:00 GMT), the seed's format; `day` is the same "
    "day as YYYY-MM-DD, which parsers read without a time zone shifting it.",
    json_schema_extra={"example": "Sat, 19 Sep 2026 00:00:00 GMT"},
)
ISO_DAY = Field(
    description="The day answered, YYYY-MM-DD (UTC).", json_schema_extra={"example": "2026-09-19"}
)
PREDICTION = Field(
    description="The close in USD: forecast for a day after `as_of`; for a day with data "
    "(horizon_days 0 or less), the observed close."
)
LOW = Field(
    description="Lower bound of the 80% interval, USD: the close should fall inside it 8 times in 10. "
    "On a day with data it equals prediction (a zero-width interval: the close is known)."
)
HIGH = Field(description="Upper bound of the 80% interval, USD (equal to prediction on a day with data).")
HORIZON = Field(
    description="Days from `as_of` to the day answered: 1 or more for a forecast, 0 or less for a day "
    "with data, whose prediction is the observed close."
)
AS_OF = Field(
    description="The newest day of the data the model was trained on, YYYY-MM-DD: forecasts start "
    "after it. Compare it with today to see how old the data is."
)
SOURCE = Field(description="Where the data came from: 'alpaca' (live feed) or 'snapshot' (bundled file).")


class ShortForecast(BaseModel):
    """One day's close and its 80% interval: the seed's four keys (headers say as-of, horizon, source)."""

    date: str = HTTP_DATE
    prediction: float = PREDICTION
    prediction_low: float = LOW
    prediction_high: float = HIGH


class DayForecast(BaseModel):
    """One day's close and its 80% interval, in a range."""

    date: str = HTTP_DATE
    day: str = ISO_DAY
    prediction: float = PREDICTION
    prediction_low: float = LOW
    prediction_high: float = HIGH
    horizon_days: int = HORIZON


class Forecast(DayForecast):
    """One day's close and its 80% interval, and when and where its data is from."""

    as_of: str = AS_OF
    source: str = SOURCE


class LevelInterval(BaseModel):
    level: int = Field(description="The interval's level in percent: the close falls inside it that often.")
    low: float = Field(description="Lower bound, USD (equal to prediction on a day with data).")
    high: float = Field(description="Upper bound, USD (equal to prediction on a day with data).")


class ShortForecastLevels(BaseModel):
    """One day's close with the intervals asked for with `level` (the seed's keys otherwise)."""

    date: str = HTTP_DATE
    prediction: float = PREDICTION
    intervals: list[LevelInterval]


class DayForecastLevels(BaseModel):
    """One day's close with the intervals asked for with `level`, in a range."""

    date: str = HTTP_DATE
    day: str = ISO_DAY
    prediction: float = PREDICTION
    intervals: list[LevelInterval]
    horizon_days: int = HORIZON


class ForecastLevels(DayForecastLevels):
    """One day's close with the intervals asked for with `level`, and when and where its data is from."""

    as_of: str = AS_OF
    source: str = SOURCE


class ForecastRange(BaseModel):
    """Daily forecasts from start to end; as_of and source hold for every day."""

    asset: str = Field(description="The asset's id, e.g. btc.")
    symbol: str
    as_of: str = AS_OF
    source: str = SOURCE
    start: str = Field(description="First day, YYYY-MM-DD.")
    end: str = Field(description="Last day, YYYY-MM-DD.")
    forecasts: list[DayForecast] | list[DayForecastLevels]


CSV_CONTENT = {CSV: {"schema": {"type": "string"}}}


def header_doc(description: str) -> dict:
    return {"description": description, "required": True, "schema": {"type": "string"}}


CACHE_HEADERS = {
    "Cache-Control": header_doc(f"public, max-age={CACHE_MAX_AGE}: reuse for an hour, then revalidate."),
    "ETag": header_doc("Changes whenever the models or their answers do; send it back in If-None-Match."),
    "Last-Modified": header_doc("When the newest model was trained."),
    "Vary": {
        **header_doc("Accept: JSON and CSV share a URL (absent when ?format= chooses the format)."),
        "required": False,
    },
}
FORECAST_HEADERS = CACHE_HEADERS | {
    AS_OF_HEADER: header_doc("as_of: the newest day of the model's data, YYYY-MM-DD."),
    HORIZON_HEADER: {
        **header_doc("horizon_days: days from as_of to the day answered (one-day answers only)."),
        "required": False,
    },
    SOURCE_HEADER: header_doc("source: where the data came from, alpaca or snapshot."),
}
NOT_MODIFIED = {
    "description": "Not Modified: the ETag in If-None-Match is current; no body.",
    "headers": {name: CACHE_HEADERS[name] for name in ("Cache-Control", "ETag", "Vary")},
}


def redirect_doc(description: str) -> dict:
    return {"description": description, "headers": {"Location": header_doc("Where to go.")}}


class AssetRedirect(BaseModel):
    """The path named the asset by its name or symbol (bitcoin, BTC) or in another case: the same
    request with its id is at `location` (/forecast/btc?date=2026-09-19)."""

    model_config = ConfigDict(
        openapi_extra={"headers": {"Location": header_doc("The same request with the asset's id.")}}
    )

    asset: str = Field(description="The asset's id.")
    location: str = Field(description="The same request with the asset's id: a path on this server.")


class ForecastAnswer(RootModel[Forecast | ForecastLevels | ForecastRange]):
    """One day (with 'date') or a range (with 'start' and 'end'), with `level`'s intervals if asked;
    CSV with ?format=csv or Accept: text/csv, with columns horizon_days, as_of and source after the
    prices."""

    model_config = ConfigDict(openapi_extra={"content": CSV_CONTENT, "headers": FORECAST_HEADERS})


class ShortForecastAnswer(RootModel[ShortForecast | ShortForecastLevels | ForecastRange]):
    """As /forecast/<asset>, but one day in JSON keeps the seed's keys: date, prediction, and
    prediction_low and prediction_high (or `intervals`); the Forecast-As-Of, Forecast-Horizon-Days
    and Forecast-Source headers say when and where its data is from."""

    model_config = ConfigDict(openapi_extra={"content": CSV_CONTENT, "headers": FORECAST_HEADERS})


class Close(BaseModel):
    date: str = Field(description="The day, YYYY-MM-DD.")
    close: float = Field(description="Actual close in USD, from the model's training data.")


class History(BaseModel):
    """Actual daily closes the model was trained on; CSV with ?format=csv or Accept: text/csv."""

    model_config = ConfigDict(openapi_extra={"content": CSV_CONTENT, "headers": CACHE_HEADERS})

    asset: str
    symbol: str
    start: str
    end: str
    closes: list[Close]


class ErrorBody(BaseModel):
    """What was wrong with the request and what is accepted."""

    error: str


class ServedRange(BaseModel):
    first_day: str = Field(description="First day with a forecast, YYYY-MM-DD.")
    last_day: str = Field(description="Last day with a forecast, YYYY-MM-DD.")


class CoverageRow(BaseModel):
    """How often the served interval held the close, at one horizon and level, in past tests."""

    stretch: Literal["all", "final"] = Field(
        description="'all': every origin tested; 'final': the most recent origins only, after the "
        "method's constants were fixed (training/selection/interval_checks.py says how many days)."
    )
    horizon_days: int = Field(description="Days ahead of the origin.")
    level: int = Field(description="The interval's level in percent: the coverage it promises.")
    origins: int = Field(description="Days the forecast was made from (origins) with a known outcome.")
    windows: float = Field(
        description="How many non-overlapping horizon-day windows those origins amount to: the "
        "sample size behind coverage_ci (overlapping windows are not independent)."
    )
    coverage: float | None = Field(
        description="Share of origins whose close fell inside the interval; null: not enough data."
    )
    coverage_ci: list[float] | None = Field(description="95% confidence interval of coverage (Wilson).")
    trivial_coverage: float | None = Field(
        description="The same share for the trivial interval (the last close times the quantiles of "
        "the three years' returns before): the baseline."
    )
    winkler_ratio: float | None = Field(
        description="Winkler (interval) score relative to the trivial interval's: below 1 is better."
    )
    pinball_ratio: float | None = Field(
        description="Pinball (quantile) loss relative to the trivial interval's: below 1 is better."
    )
    note: str | None = Field(description="'not enough data' when there were too few origins.")
    held_less_well: bool | None = Field(
        description="True when coverage falls short of the level beyond chance (its CI lies below) or by "
        "more than 10 points: the rows the summary names. Null without coverage."
    )


class TrackRecord(BaseModel):
    """The served intervals judged out of sample: rolling origins, each using the data up to it only."""

    level: int = Field(description="The level the summary speaks of: the interval answers carry by default.")
    summary: str = Field(
        description="One plain sentence, made from the rows: what the band means, how often it held, "
        "and where it held less well."
    )
    coverage: list[CoverageRow] = Field(description="One row per stretch, horizon and level.")


class PointError(BaseModel):
    model: str = Field(description="The served configuration, or a baseline (naive: the last close).")
    horizon_days: int
    mae: float = Field(description="Mean absolute error, USD.")
    mape: float = Field(description="Mean absolute percentage error, %.")
    mdape: float = Field(description="Median absolute percentage error, %.")


class PointEvaluation(BaseModel):
    """How the configuration was chosen and how its point forecast scored against the baselines."""

    chosen: str = Field(description="The served configuration.")
    choice: dict[str, Any] | None = Field(None, description="What the retrain kept or changed, and why.")
    candidates: dict[str, float] = Field(description="Each candidate's MAPE relative to naive's: lower wins.")
    cutoffs: int = Field(description="Cutoffs the point forecasts were scored at.")
    first_cutoff: str
    last_cutoff: str
    spacing_days: int
    point_errors: list[PointError]
    diebold_mariano: dict[str, Any] | None = Field(
        None, description="By horizon: the served forecast's errors tested against naive's."
    )
    gate: dict[str, Any] | None = Field(None, description="The quality gate the model passed.")


class ModelCard(BaseModel):
    model_config = ConfigDict(openapi_extra={"headers": CACHE_HEADERS})

    asset: str = Field(description="The asset's name in URLs.")
    name: str
    symbol: str = Field(description="Alpaca's symbol, e.g. BTC/USD.")
    trained_at: str = Field(description="When the model was trained (UTC, ISO 8601).")
    source: str = Field(description="'alpaca' (live data) or 'snapshot' (the bundled offline data).")
    origin: str = Field(description="The API URL or file the data came from.")
    first_day: str = Field(description="First day of the training data.")
    last_day: str = Field(description="Last day of the training data.")
    rows: int = Field(description="Days of training data.")
    versions: dict[str, str] = Field(description="Library versions used for training.")
    model_sha256: str
    serves: ServedRange
    track_record: TrackRecord | None = Field(
        description="How often the served intervals held in past tests, when training ran a backtest."
    )
    backtest: PointEvaluation | None = Field(
        description="The point forecast's evaluation, when training ran a backtest."
    )


class ModelCards(RootModel[dict[str, ModelCard]]):
    """Every served model's card, keyed by asset."""

    model_config = ConfigDict(openapi_extra={"headers": CACHE_HEADERS})


class AssetHealth(BaseModel):
    trained_at: str = Field(description="When the model was trained (UTC, ISO 8601).")
    data_last_day: str = Field(description="The newest day of its data (as_of in forecasts), YYYY-MM-DD.")
    data_age_days: int = Field(description="Days from data_last_day to today (UTC).")
    source: str = Field(description="Where the data came from: alpaca or snapshot.")
    serves: ServedRange


class Health(BaseModel):
    status: Literal["ok", "stale"] = Field(
        description="'ok' once every model is loaded and its answers are ready; 'stale' (still a 200) "
        "while any model's data is more than max_data_age_days old: retrain it."
    )
    stale_assets: list[str] = Field(description="The assets whose data is stale; empty when none is.")
    max_data_age_days: int = Field(description="MAX_DATA_AGE_DAYS: the most days data may be old.")
    models: dict[str, AssetHealth]
