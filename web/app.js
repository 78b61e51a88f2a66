/* The page at /: charts an asset's daily closes and forecast, and answers one date; it talks only to this API. */
"use strict";

const MAX_RANGE_DAYS = 1500; // the API's limit per range request (see /docs)
const DAY_MS = 24 * 3600 * 1000;
const COLORS = {
  text: "#1b1b1b",
  close: "#1b1b1b",
  forecast: "#1d4ed8",
  band: "rgba(29, 78, 216, 0.16)",
  picked: "#b45309",
  grid: "#dedede",
};
const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const longDay = new Intl.DateTimeFormat("en-GB", { dateStyle: "full", timeZone: "UTC" });

const $ = (id) => document.getElementById(id);

const state = {
  cards: {}, // asset -> its model card (GET /models)
  health: null, // GET /health: which assets' data is stale, and the limit
  asset: null, // the asset shown
  series: null, // the chart's data for state.asset
  picked: null, // the answered day, marked on the chart
  years: 3, // time window; 0 = all
  chartLoad: null, // AbortController of the chart load in flight
  question: 0, // number of the latest date asked: older answers are dropped
  windowing: false, // true while the page itself moves the x axis
};

class ApiError extends Error {}

// ------------------------------------------------------------ API

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/** [start, end] ISO day pairs covering first..last, each at most MAX_RANGE_DAYS days long. */
function dayRanges(first, last) {
  const ranges = [];
  const lastMs = Date.parse(last);
  for (let start = Date.parse(first); start <= lastMs; start += MAX_RANGE_DAYS * DAY_MS) {
    ranges.push([isoDay(start), isoDay(Math.min(start + (MAX_RANGE_DAYS - 1) * DAY_MS, lastMs))]);
  }
  return ranges;
}

/** The JSON body of a GET; an ApiError carrying the API's own message when it answers 4xx/5xx. */
async function getJson(url, signal) {
  const response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(body && body.error ? body.error : `${response.status} ${response.statusText}`);
  }
  return body;
}

/** Every item of a range route from first to last, asked in ranges the API accepts, in order. */
async function rangeItems(path, key, first, last, signal) {
  const pages = await Promise.all(
    dayRanges(first, last).map(([start, end]) => getJson(`${path}?start=${start}&end=${end}`, signal)),
  );
  return pages.flatMap((page) => page[key]);
}

/** An asset's closes and forecasts as parallel arrays keyed by ISO day. */
async function loadSeries(asset, signal) {
  const card = state.cards[asset];
  const name = encodeURIComponent(asset);
  const [closes, forecasts] = await Promise.all([
    rangeItems(`history/${name}`, "closes", card.first_day, card.last_day, signal),
    rangeItems(`forecast/${name}`, "forecasts", card.serves.first_day, card.serves.last_day, signal),
  ]);
  return {
    asset,
    closeDays: closes.map((c) => c.date),
    closes: closes.map((c) => c.close),
    days: forecasts.map((f) => f.day),
    prediction: forecasts.map((f) => f.prediction),
    low: forecasts.map((f) => f.prediction_low),
    high: forecasts.map((f) => f.prediction_high),
  };
}

// ------------------------------------------------------------ chart

// A solid line of the chart, named in the legend at `rank`.
function lineTrace(name, rank, x, y, color, hover) {
  return {
    name,
    legendrank: rank,
    x,
    y,
    mode: "lines",
    line: { width: 1.5, color },
    hovertemplate: `${hover}<extra></extra>`,
  };
}

function chartTraces(series, picked) {
  const money = "%{y:$,.2f}";
  const traces = [
    {
      name: "80% interval (low)",
      legendrank: 3,
      x: series.days,
      y: series.low,
      mode: "lines",
      line: { width: 0, color: COLORS.forecast },
      showlegend: false,
      hovertemplate: `80% low: ${money}<extra></extra>`,
    },
    {
      name: "80% interval",
      legendrank: 3,
      x: series.days,
      y: series.high,
      mode: "lines",
      fill: "tonexty",
      fillcolor: COLORS.band,
      line: { width: 0, color: COLORS.forecast },
      hovertemplate: `80% high: ${money}<extra></extra>`,
    },
    lineTrace("Forecast", 2, series.days, series.prediction, COLORS.forecast, `Forecast: ${money}`),
    lineTrace("Actual close", 1, series.closeDays, series.closes, COLORS.close, `Close: ${money}`),
  ];
  if (picked) {
    traces.push({
      name: "Your date",
      legendrank: 4,
      x: [picked.day],
      y: [picked.prediction],
      mode: "markers",
      marker: { size: 11, symbol: "diamond", color: COLORS.picked },
      error_y: {
        type: "data",
        symmetric: false,
        array: [picked.high - picked.prediction],
        arrayminus: [picked.prediction - picked.low],
        color: COLORS.picked,
        thickness: 2,
        width: 6,
      },
      hovertemplate: `Your date: ${money}<extra></extra>`,
    });
  }
  return traces;
}

/** The x range of the time window: `years` back from the last data day, to the last forecast day. */
function windowRange(series, years) {
  const card = state.cards[series.asset];
  const first = [card.first_day, card.serves.first_day].sort()[0];
  if (!years) return [first, card.serves.last_day];
  const from = new Date(Date.parse(card.last_day));
  from.setUTCFullYear(from.getUTCFullYear() - years);
  return [[isoDay(from.getTime()), first].sort()[1], card.serves.last_day];
}

/** A y range that fits what lies between ISO days x0 and x1: closes and the whole band. */
function fittedYRange(series, x0, x1) {
  let low = Infinity;
  let high = -Infinity;
  series.closeDays.forEach((day, i) => {
    if (day >= x0 && day <= x1) [low, high] = [Math.min(low, series.closes[i]), Math.max(high, series.closes[i])];
  });
  series.days.forEach((day, i) => {
    if (day >= x0 && day <= x1) [low, high] = [Math.min(low, series.low[i]), Math.max(high, series.high[i])];
  });
  if (!Number.isFinite(low)) return undefined;
  const pad = (high - low) * 0.05 || 1;
  return [low - pad, high + pad];
}

function chartLayout(series) {
  const card = state.cards[series.asset];
  const xRange = windowRange(series, state.years);
  return {
    margin: { l: 72, r: 16, t: 40, b: 40 },
    font: { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", color: COLORS.text, size: 13 },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    hovermode: "x unified",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", traceorder: "normal" }, // by legendrank
    xaxis: { type: "date", range: xRange, gridcolor: COLORS.grid, linecolor: COLORS.text },
    yaxis: {
      range: fittedYRange(series, ...xRange),
      tickprefix: "$",
      tickformat: ",.0f",
      gridcolor: COLORS.grid,
      linecolor: COLORS.text,
    },
    shapes: [
      {
        type: "line",
        x0: card.last_day,
        x1: card.last_day,
        yref: "paper",
        y0: 0,
        y1: 1,
        line: { color: COLORS.text, width: 1, dash: "dot" },
      },
    ],
    annotations: [
      {
        x: card.last_day,
        y: 1,
        yref: "paper",
        yanchor: "top",
        xanchor: "right",
        text: "last data day ",
        showarrow: false,
        font: { size: 12, color: COLORS.text },
      },
    ],
  };
}

async function drawChart() {
  const chart = $("chart");
  const firstDraw = !chart.data;
  await Plotly.react(chart, chartTraces(state.series, state.picked), chartLayout(state.series), {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "sendChartToCloud"], // the page sends nothing elsewhere
  });
  if (firstDraw) chart.on("plotly_relayout", followZoom);
}

/** After the user zooms or pans along x only, fit y to what is visible (Plotly keeps y as it was). */
function followZoom(event) {
  if (state.windowing) return;
  const x0 = event["xaxis.range[0]"] ?? (event["xaxis.range"] || [])[0];
  const x1 = event["xaxis.range[1]"] ?? (event["xaxis.range"] || [])[1];
  if (x0 === undefined && !event["xaxis.autorange"]) return;
  pressWindowButton(null);
  if (x0 === undefined || "yaxis.range[0]" in event) return; // autorange, or a box zoom that chose y too
  const range = fittedYRange(state.series, String(x0).slice(0, 10), String(x1).slice(0, 10));
  if (range) Plotly.relayout($("chart"), { "yaxis.range": range });
}

async function showWindow(years) {
  state.years = years;
  pressWindowButton(years);
  if (!state.series) return;
  const xRange = windowRange(state.series, years);
  state.windowing = true;
  try {
    await Plotly.relayout($("chart"), { "xaxis.range": xRange, "yaxis.range": fittedYRange(state.series, ...xRange) });
  } finally {
    state.windowing = false;
  }
}

function pressWindowButton(years) {
  for (const button of document.querySelectorAll(".window button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.years) === years));
  }
}

function chartSummary(series) {
  const card = state.cards[series.asset];
  const last = series.days.length - 1;
  return (
    `${card.name} (${card.symbol}): daily closes from ${series.closeDays[0]} to ` +
    `${series.closeDays.at(-1)} (last close ${usd.format(series.closes.at(-1))}), and the forecast ` +
    `to ${series.days[last]}: ${usd.format(series.prediction[last])}, 80% interval ` +
    `${usd.format(series.low[last])} to ${usd.format(series.high[last])}.`
  );
}

function modelSummary(card) {
  const trained = card.trained_at.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
  return (
    `Model trained ${trained} on ${card.rows.toLocaleString("en-US")} days of ${card.source} data ` +
    `(${card.first_day} to ${card.last_day}); forecasts served from ${card.serves.first_day} ` +
    `to ${card.serves.last_day}.`
  );
}

async function loadChart(asset) {
  state.chartLoad?.abort(); // a newer choice wins
  const load = new AbortController();
  state.chartLoad = load;
  const chart = $("chart");
  const caption = $("chart-summary");
  chart.setAttribute("aria-busy", "true");
  chart.removeAttribute("data-asset");
  caption.classList.remove("error");
  caption.textContent = `Loading ${state.cards[asset].symbol}…`;
  try {
    const series = await loadSeries(asset, load.signal);
    if (load.signal.aborted) return;
    state.series = series;
    await drawChart();
    caption.textContent = chartSummary(series);
    chart.dataset.asset = asset; // tells a reader (and the tests) which asset is drawn
    chart.setAttribute("aria-busy", "false");
  } catch (error) {
    if (load.signal.aborted) return;
    caption.classList.add("error");
    caption.textContent = `The chart could not be loaded: ${error.message}`;
    chart.setAttribute("aria-busy", "false");
  }
}

// ------------------------------------------------------------ the date answer

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children); // strings become text nodes: nothing from the API is parsed as HTML
  return node;
}

function money(value, className) {
  return el("data", { class: className, value: String(value) }, usd.format(value));
}

/** "1 day", "30 days". */
function daysText(n) {
  return n === 1 ? "1 day" : `${n.toLocaleString("en-US")} days`;
}

function answerNodes(card, body) {
  const what = `${card.name} (${card.symbol})`;
  const when = el("time", { datetime: body.day }, longDay.format(Date.parse(body.day)));
  if (body.horizon_days <= 0) {
    // A day with data: the API answers the observed close, with a zero-width interval.
    return [
      el("p", {}, el("strong", {}, what), ", ", when, ": observed close ", money(body.prediction, "prediction"), "."),
      el("p", {}, `A day with data (up to ${body.as_of}), so the close is known: no forecast, no interval.`),
    ];
  }
  return [
    el(
      "p",
      {},
      el("strong", {}, what),
      ", ",
      when,
      ": forecast close ",
      money(body.prediction, "prediction"),
      ", 80% interval ",
      money(body.prediction_low, "low"),
      " to ",
      money(body.prediction_high, "high"),
      ".",
    ),
    el(
      "p",
      { class: "horizon" },
      `${daysText(body.horizon_days)} after the last day of data (${body.as_of}, ${body.source}): `,
      "the close should fall inside the interval about 8 times in 10 (see the track record below).",
    ),
  ];
}

async function ask(event) {
  event?.preventDefault();
  const asset = state.asset;
  const card = state.cards[asset];
  const question = ++state.question;
  const region = $("answer-text");
  const date = $("date").value; // "" when empty or incomplete: the API says what it accepts
  region.replaceChildren(`Asking for ${card.symbol} on ${date || "(no date)"}…`);
  region.className = "";
  try {
    const body = await getJson(`forecast/${encodeURIComponent(asset)}?date=${encodeURIComponent(date)}`);
    if (question !== state.question) return;
    region.replaceChildren(...answerNodes(card, body));
    state.picked = { day: body.day, prediction: body.prediction, low: body.prediction_low, high: body.prediction_high };
  } catch (error) {
    if (question !== state.question) return;
    region.className = "error";
    region.replaceChildren(el("strong", {}, "No forecast: "), el("span", { class: "api-error" }, error.message));
    state.picked = null;
  }
  $("answer").dataset.question = String(question); // tells the tests an answer arrived
  if (state.series?.asset === asset) await drawChart();
}

// ------------------------------------------------------------ data age and track record

/** "Bitcoin data up to 2026-08-20 (106 days ago, snapshot)", and whether the API calls it stale. */
function dataAgeNodes(card) {
  const age = Math.floor((Date.now() - Date.parse(card.last_day)) / DAY_MS);
  const ago = age <= 0 ? "today" : `${daysText(age)} ago`;
  const nodes = [
    `${card.name} data up to `,
    el("time", { datetime: card.last_day }, card.last_day),
    ` (${ago}, ${card.source}).`,
  ];
  const health = state.health;
  if (health && health.stale_assets.includes(card.asset)) {
    nodes.push(
      ` Older than the ${daysText(health.max_data_age_days)} this service allows: forecasts count from that day, not from today.`,
    );
  }
  return nodes;
}

function showDataAge(card) {
  const line = $("data-age");
  line.replaceChildren(...dataAgeNodes(card));
  line.classList.toggle("stale", Boolean(state.health?.stale_assets.includes(card.asset)));
}

function percent(share) {
  return `${Math.round(share * 100)}%`;
}

/** One cell: how often the band held in a stretch, its CI and the number of tests. */
function heldCell(row) {
  if (!row || row.coverage === null) return el("td", { class: "held" }, "not enough data");
  const cell = el(
    "td",
    { class: row.held_less_well ? "held short" : "held", "data-stretch": row.stretch },
    el("data", { value: String(row.coverage) }, percent(row.coverage)),
    ` (${percent(row.coverage_ci[0])}–${percent(row.coverage_ci[1])}), ${row.origins.toLocaleString("en-US")} tests`,
  );
  if (row.held_less_well) cell.append(el("span", { class: "flag" }, " held less well"));
  return cell;
}

/** The track record of the shown asset: the card's sentence, and promised vs held by horizon. */
function showTrackRecord(card) {
  const record = card.track_record;
  const table = $("track-table");
  $("track-card-link").href = `models/${encodeURIComponent(card.asset)}`;
  if (!record) {
    $("track-summary").textContent = "No track record: this model was trained without a backtest.";
    table.hidden = true;
    return;
  }
  $("track-summary").textContent = record.summary;
  const rows = record.coverage.filter((row) => row.level === record.level);
  const horizons = [...new Set(rows.map((row) => row.horizon_days))].sort((a, b) => a - b);
  const find = (stretch, h) => rows.find((row) => row.stretch === stretch && row.horizon_days === h);
  table.tBodies[0].replaceChildren(
    ...horizons.map((h) =>
      el(
        "tr",
        { "data-horizon": String(h) },
        el("th", { scope: "row" }, daysText(h)),
        el("td", {}, `${record.level}%`),
        heldCell(find("all", h)),
        heldCell(find("final", h)),
      ),
    ),
  );
  table.hidden = false;
  $("track-record").dataset.asset = card.asset; // tells a reader (and the tests) which asset is shown
}

// ------------------------------------------------------------ asset choice

function showAsset(asset) {
  const card = state.cards[asset];
  state.asset = asset;
  state.picked = null;
  const url = new URL(window.location.href);
  url.searchParams.set("asset", asset);
  window.history.replaceState(null, "", url);
  const link = $("model-card-link");
  link.href = `models/${encodeURIComponent(asset)}`;
  link.textContent = `${card.name} model card`;
  const date = $("date");
  date.min = card.serves.first_day;
  date.max = card.serves.last_day;
  if (!date.value) date.value = isoDay(Date.parse(card.last_day) + DAY_MS); // the first day past the data
  $("date-hint").textContent = `Forecasts from ${card.serves.first_day} to ${card.serves.last_day}.`;
  $("model-summary").textContent = modelSummary(card);
  showDataAge(card);
  showTrackRecord(card);
  return loadChart(asset);
}

function assetOption(card) {
  return el("option", { value: card.asset }, `${card.name} (${card.symbol})`);
}

async function start() {
  const select = $("asset");
  try {
    // The health check only adds whether the data is stale: the page works without it.
    [state.cards, state.health] = await Promise.all([getJson("models"), getJson("health").catch(() => null)]);
  } catch (error) {
    $("chart-summary").textContent = `The models could not be loaded: ${error.message}`;
    $("chart-summary").classList.add("error");
    return;
  }
  const assets = Object.keys(state.cards);
  const wanted = new URLSearchParams(window.location.search).get("asset");
  const asset = assets.includes(wanted) ? wanted : assets[0];
  select.replaceChildren(...assets.map((key) => assetOption(state.cards[key])));
  select.value = asset;
  for (const control of [select, $("date"), $("ask")]) control.disabled = false;
  select.addEventListener("change", () => {
    const answered = $("answer").dataset.question !== undefined;
    showAsset(select.value);
    if (answered) ask(); // keep the answer about the asset on show
  });
  $("controls").addEventListener("submit", ask);
  for (const button of document.querySelectorAll(".window button")) {
    button.addEventListener("click", () => showWindow(Number(button.dataset.years)));
  }
  await showAsset(asset);
}

start();
