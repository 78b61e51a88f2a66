// What web/app.js reads from the API's answers, typed by what openapi-typescript generates from the
// live /openapi.json (api.d.ts, written beside this file by tests/test_clients.py). tsc --strict
// fails when the document stops promising what the page uses: a renamed or retyped field, a route
// or answer that disappears. Each function follows the app.js function it is named after.
import type { components, paths } from "./api";

type Answer<Path extends keyof paths, Status extends number> = paths[Path]["get"]["responses"] extends {
  [status in Status]: { content: { "application/json": infer Body } };
}
  ? Body
  : never;

type ModelCards = Answer<"/models", 200>;
type History = Answer<"/history/{asset}", 200>;
type ForecastAnswer = Answer<"/forecast/{asset}", 200>;
type Refusal = Answer<"/forecast/{asset}", 400>;
type Forecast = components["schemas"]["Forecast"];
type DayForecast = components["schemas"]["DayForecast"];
type Health = Answer<"/health", 200>;

const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

// The page asks for no interval level, so every forecast it gets has the one served interval
// (prediction_low, prediction_high); app.js reads them without asking.
const isServed = <Day extends DayForecast>(forecast: { date: string }): forecast is Day =>
  "prediction_low" in forecast;
function served<Day extends DayForecast>(forecast: { date: string; prediction: number }): Day {
  if (!isServed<Day>(forecast)) throw new Error("a forecast without its served interval");
  return forecast;
}

// getJson: a refused request shows the API's own message.
export function errorMessage(body: Refusal | null, status: number, statusText: string): string {
  return body && body.error ? body.error : `${status} ${statusText}`;
}

// rangeItems + loadSeries: the chart's series from the ranges of /history and /forecast.
export function series(cards: ModelCards, asset: string, histories: History[], answers: ForecastAnswer[]) {
  const card = cards[asset];
  const spans: [string, string][] = [
    [card.first_day, card.last_day],
    [card.serves.first_day, card.serves.last_day],
  ];
  const closes = histories.flatMap((page) => page.closes);
  const forecasts: DayForecast[] = [];
  for (const page of answers) {
    if ("forecasts" in page) for (const forecast of page.forecasts) forecasts.push(served<DayForecast>(forecast));
  }
  return {
    asset: card.asset,
    spans,
    closeDays: closes.map((c): string => c.date),
    closes: closes.map((c): number => c.close),
    days: forecasts.map((f): string => f.day),
    prediction: forecasts.map((f): number => f.prediction),
    low: forecasts.map((f): number => f.prediction_low),
    high: forecasts.map((f): number => f.prediction_high),
  };
}

// chartSummary, modelSummary, showAsset, assetOption: what the page says of a model.
export function modelSummary(cards: ModelCards, asset: string): string {
  const card = cards[asset];
  const trained = card.trained_at.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
  return (
    `${card.name} (${card.symbol}, ${card.asset}): model trained ${trained} on ` +
    `${card.rows.toLocaleString("en-US")} days of ${card.source} data (${card.first_day} to ` +
    `${card.last_day}); forecasts served from ${card.serves.first_day} to ${card.serves.last_day}.`
  );
}

// ask + answerNodes: one day's forecast, shown and marked on the chart, with its horizon.
export function picked(answer: ForecastAnswer) {
  if ("forecasts" in answer) throw new Error("a date gives one day, not a range");
  const body = served<Forecast>(answer);
  const known: boolean = body.horizon_days <= 0;
  return {
    day: body.day,
    known,
    said: `${body.horizon_days} days after ${body.as_of} (${body.source}), ${isoDay(Date.parse(body.date))}`,
    prediction: body.prediction,
    low: body.prediction_low,
    high: body.prediction_high,
  };
}

// dataAgeNodes: how old the shown asset's data is, and whether /health calls it stale.
export function dataAge(cards: ModelCards, asset: string, health: Health): string {
  const card = cards[asset];
  const stale: boolean = health.stale_assets.includes(asset);
  return `${card.last_day} (${card.source})${stale ? `, older than ${health.max_data_age_days} days` : ""}`;
}

// showTrackRecord + heldCell: the card's sentence and promised vs held coverage by horizon.
export function trackRecord(cards: ModelCards, asset: string): string[] {
  const record = cards[asset].track_record;
  if (!record) return ["No track record"];
  const lines = [record.summary];
  for (const row of record.coverage) {
    if (row.level !== record.level) continue;
    const held =
      row.coverage === null || row.coverage === undefined || !row.coverage_ci
        ? "not enough data"
        : `${row.coverage} (${row.coverage_ci[0]}-${row.coverage_ci[1]}), ${row.origins} tests`;
    lines.push(`${row.stretch} ${row.horizon_days}: ${held}${row.held_less_well ? " held less well" : ""}`);
  }
  return lines;
}
