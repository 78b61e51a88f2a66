"""The API's routes: forecasts (one day or a range, JSON or CSV), history, model cards, health."""

from datetime import date

from flask import Response, request
from flask_openapi3 import OpenAPI, Tag

from serving.answers import ServedModel, compact_json
from serving.caching import cache_validators, cacheable
from serving.freshness import health as health_body
from serving.http import ALIASES, CSV, JSON, SERVICE
from serving.queries import (
    FORECAST_PARAMETERS,
    HISTORY_PARAMETERS,
    ClientError,
    asset_names,
    check_parameters,
    find_asset,
    known_assets,
    requested_day,
    requested_levels,
    requested_range,
    wants_csv,
)
from serving.responses import (
    HISTORY_CSV_HEADER,
    forecast_csv_header,
    levels_csv,
    levels_json,
    model_card,
    range_response,
    with_data_facts,
)
from serving.schemas import (
    NOT_MODIFIED,
    AssetRedirect,
    ErrorBody,
    ForecastAnswer,
    ForecastQuery,
    Health,
    History,
    HistoryQuery,
    ModelCard,
    ModelCards,
    ShortForecastAnswer,
    asset_path_model,
    parses_own_query,
)

FORECASTS = Tag(name="forecasts", description="Forecasts and the data behind them")


def forecast_for(served: ServedModel, short: bool = False) -> Response:
    """One day's forecast, or a range of them, as the query asks; with `level`, those intervals.

    `short`: an alias such as /bitcoin, whose one-day JSON answers keep the seed's four keys.
    """
    args = request.args
    check_parameters(args, FORECAST_PARAMETERS)
    levels = requested_levels(args, served)
    if "start" in args or "end" in args:
        if "date" in args:
            raise ClientError("give either 'date', or 'start' and 'end', not both")
        days = requested_range(args, served.first_day, served.last_day)
        items, csv_rows = served.days.items, served.days.csv_rows
        if levels is not None:
            items = {day: levels_json(served, day, levels, "item") for day in days}
            csv_rows = {day: levels_csv(served, day, levels) for day in days}
        header = forecast_csv_header(levels)
        response = range_response(served, days, "forecasts", items, csv_rows, header, facts=True)
        return with_data_facts(response, served)
    day = requested_day(args, served)
    if wants_csv():
        row = served.days.csv_rows[day] if levels is None else levels_csv(served, day, levels)
        response = Response(forecast_csv_header(levels) + row, mimetype=CSV)
    elif levels is not None:
        response = Response(levels_json(served, day, levels, "short" if short else "answer"), mimetype=JSON)
    else:
        response = Response((served.days.short_answers if short else served.answers)[day], mimetype=JSON)
    return with_data_facts(response, served, day)


def history_for(served: ServedModel) -> Response:
    """The training data's closes over the requested range."""
    check_parameters(request.args, HISTORY_PARAMETERS)
    first = date.fromisoformat(served.metadata["first_day"])
    last = date.fromisoformat(served.metadata["last_day"])
    days = requested_range(request.args, first, last, what="data")
    return range_response(served, days, "closes", served.closes, served.close_rows, HISTORY_CSV_HEADER)


def register_forecast_routes(app: OpenAPI, models: dict[str, ServedModel]) -> None:
    answer_docs = {200: ForecastAnswer, 301: AssetRedirect, 304: NOT_MODIFIED, 400: ErrorBody, 404: ErrorBody}
    names = asset_names(models)
    AssetPath = asset_path_model(list(models), known_assets(models))  # a class, so named like one
    cached = cacheable(cache_validators(models))

    def find(asset: str) -> ServedModel:
        return find_asset(models, names, asset)

    @app.get(
        "/forecast/<asset>", tags=[FORECASTS], summary="Forecast one day or a range", responses=answer_docs
    )
    @parses_own_query
    @cached
    def forecast(asset: str, path: AssetPath = None, query: ForecastQuery = None):
        """The forecast close and its 80% interval for one day (`date`) or a range (`start`, `end`)."""
        return forecast_for(find(asset))

    for alias, key in ALIASES.items():
        if key in models:
            register_alias(app, alias, models[key], cached, answer_docs)

    @app.get(
        "/history/<asset>",
        tags=[FORECASTS],
        summary="Actual daily closes",
        responses=answer_docs | {200: History},
    )
    @parses_own_query
    @cached
    def history(asset: str, path: AssetPath = None, query: HistoryQuery = None):
        """The daily closes the model was trained on, from `start` to `end`."""
        return history_for(find(asset))

    @app.get(
        "/models", tags=[FORECASTS], summary="Model cards", responses={200: ModelCards, 304: NOT_MODIFIED}
    )
    @cached
    def model_cards():
        """Every model's card: training time, data source and span, versions, servable range, backtest."""
        check_parameters(request.args, ())
        return {key: model_card(served) for key, served in models.items()}

    @app.get(
        "/models/<asset>",
        tags=[FORECASTS],
        summary="One model card",
        responses={200: ModelCard, 301: AssetRedirect, 304: NOT_MODIFIED, 404: ErrorBody},
    )
    @parses_own_query
    @cached
    def one_model_card(asset: str, path: AssetPath = None):
        """The card of one asset's model."""
        served = find(asset)
        check_parameters(request.args, ())
        return model_card(served)


def register_alias(app: OpenAPI, alias: str, served: ServedModel, cached, answer_docs: dict) -> None:
    """A short path answering as /forecast/<asset> (/bitcoin: BTC/USD), but for one day in JSON,
    whose answer keeps the seed's four keys."""
    symbol = served.metadata["symbol"]

    def forecast_alias(query: ForecastQuery = None):
        return forecast_for(served, short=True)

    # Named and described before it is wrapped: the endpoint, operationId and docs come from these.
    forecast_alias.__name__ = alias.strip("/")
    forecast_alias.__doc__ = (
        f"As /forecast/{served.key}: the forecast close of {symbol} for a UTC day, or a range; one day "
        "in JSON answers the original four keys (date, prediction, prediction_low, prediction_high)."
    )
    route = app.get(
        alias,
        tags=[FORECASTS],
        summary=f"Forecast {symbol} (alias of /forecast/{served.key})",
        # No asset to miss, and one day in JSON keeps the seed's keys.
        responses={code: doc for code, doc in answer_docs.items() if code not in (301, 404)}
        | {200: ShortForecastAnswer},
    )
    route(parses_own_query(cached(forecast_alias)))


def register_service_routes(app: OpenAPI, models: dict[str, ServedModel], max_days: int) -> None:
    @app.get("/health", tags=[SERVICE], summary="Readiness and data age", responses={200: Health})
    def health():
        """200 once every model is loaded and its answers are precomputed; "status" is "stale" (still
        200) while any model's newest day of data is more than MAX_DATA_AGE_DAYS old."""
        return Response(compact_json(health_body(models, max_days)), mimetype=JSON)
