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

const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

// The page asks for no interval level, so every forecast it gets has the one served interval
// (prediction_low, prediction_high); app.js reads them without asking.
const isServed = (forecast: { date: string }): forecast is Forecast => "prediction_low" in forecast;
function served(forecast: { date: string; prediction: number }): Forecast {
  if (!isServed(forecast)) throw new Error("a forecast without its served interval");
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
  const forecasts: Forecast[] = [];
  for (const page of answers) {
    if ("forecasts" in page) for (const forecast of page.forecasts) forecasts.push(served(forecast));
  }
  return {
    asset: card.asset,
    spans,
    closeDays: closes.map((c): string => c.date),
    closes: closes.map((c): number => c.close),
    days: forecasts.map((f): string => isoDay(Date.parse(f.date))),
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

// ask + answerNodes: one day's forecast, shown and marked on the chart.
export function picked(answer: ForecastAnswer) {
  if ("forecasts" in answer) throw new Error("a date gives one day, not a range");
  const body = served(answer);
  return {
    day: isoDay(Date.parse(body.date)),
    prediction: body.prediction,
    low: body.prediction_low,
    high: body.prediction_high,
  };
}
