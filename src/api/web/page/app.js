// The market page: loads the market's state over the JSON API, then keeps it live from
// the market's event stream (book changes with a checksum, trades). The book copy is
// checked against the exchange's checksum after every change; a mismatch, or a stream
// the server refuses, resyncs from a fresh snapshot, visibly.
"use strict";

const API = "/api/v1";
const BOOK_DEPTH = 10;
const TRADES_SHOWN = 50;
const CHECKSUM_LEVELS = 10;
const TICKER_EVERY_MS = 5000;
const ISSUE_PRICES_EVERY_MS = 30000;
const MINUTE_MS = 60000;

const page = {
  market: null,
  bids: new Map(), // price string -> quantity string
  asks: new Map(),
  checks: 0,
  trades: [],
  candles: new Map(), // minute start (s) -> bar
  series: null,
  source: null,
};

function $(id) {
  return document.getElementById(id);
}

function setState(state, text) {
  document.body.dataset.state = state;
  $("status").textContent = text;
}

async function getJson(path) {
  const response = await fetch(API + path, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(`${path}: ${body.error || response.status}`);
  }
  return body;
}

// CRC32 (IEEE), as the exchange's top-of-book checksum uses.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) {
      c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(text) {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// A decimal string as the checksum writes it: the point removed, leading zeros stripped.
function checksumDigits(decimal) {
  return decimal.replace(".", "").replace(/^0+/, "");
}

// Compares two decimal strings of the same market (same number of places) by value.
function compareDecimals(a, b) {
  const [ai, af = ""] = a.split(".");
  const [bi, bf = ""] = b.split(".");
  const ia = ai.replace(/^0+/, "");
  const ib = bi.replace(/^0+/, "");
  if (ia.length !== ib.length) return ia.length - ib.length;
  if (ia !== ib) return ia < ib ? -1 : 1;
  return af === bf ? 0 : af < bf ? -1 : 1;
}

function sortedLevels(side, bestFirst) {
  const levels = [...side.entries()];
  levels.sort((a, b) => (bestFirst === "high" ? -1 : 1) * compareDecimals(a[0], b[0]));
  return levels;
}

function bookChecksum() {
  const asks = sortedLevels(page.asks, "low").slice(0, CHECKSUM_LEVELS);
  const bids = sortedLevels(page.bids, "high").slice(0, CHECKSUM_LEVELS);
  let text = "";
  for (const [price, quantity] of asks.concat(bids)) {
    text += checksumDigits(price) + checksumDigits(quantity);
  }
  return crc32(text);
}

function applyLevels(side, levels) {
  for (const level of levels) {
    if (compareDecimals(level.quantity, "0") === 0) {
      side.delete(level.price);
    } else {
      side.set(level.price, level.quantity);
    }
  }
}

function renderBook() {
  const row = ([price, quantity]) => {
    const tr = document.createElement("tr");
    tr.dataset.price = price;
    tr.dataset.quantity = quantity;
    tr.append(cell(price), cell(quantity));
    return tr;
  };
  // Asks lowest at the bottom, next to the best bid.
  const asks = sortedLevels(page.asks, "low").slice(0, BOOK_DEPTH).reverse();
  const bids = sortedLevels(page.bids, "high").slice(0, BOOK_DEPTH);
  $("asks").replaceChildren(...asks.map(row));
  $("bids").replaceChildren(...bids.map(row));
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function timeOf(ms) {
  return new Date(Number(ms)).toLocaleTimeString();
}

function renderTrades() {
  $("trades").replaceChildren(
    ...page.trades.map((trade) => {
      const tr = document.createElement("tr");
      tr.dataset.seq = trade.seq;
      tr.dataset.price = trade.price;
      tr.dataset.quantity = trade.quantity;
      const side = trade.taker_side === "SIDE_BUY" ? "buy" : "sell";
      tr.append(cell(timeOf(trade.time_ms)), cell(trade.price, side), cell(trade.quantity), cell(side, side));
      return tr;
    }),
  );
}

function addTrades(trades) {
  for (const trade of trades) {
    page.trades.unshift(trade);
    addToCandle(trade);
  }
  page.trades.length = Math.min(page.trades.length, TRADES_SHOWN);
  renderTrades();
  if (trades.length) {
    $("last-price").textContent = trades[trades.length - 1].price;
  }
}

// Chart prices are for drawing only; the numbers shown come from the exchange's strings.
function addToCandle(trade) {
  const time = Math.floor(Number(trade.time_ms) / MINUTE_MS) * 60;
  const price = Number(trade.price);
  const bar = page.candles.get(time);
  const next = bar
    ? { time, open: bar.open, high: Math.max(bar.high, price), low: Math.min(bar.low, price), close: price }
    : { time, open: price, high: price, low: price, close: price };
  page.candles.set(time, next);
  if (page.series) {
    const last = Math.max(...page.candles.keys());
    if (time === last) page.series.update(next);
  }
  renderCandleCount();
}

function renderCandleCount() {
  $("candles").dataset.count = String(page.candles.size);
}

function setUpChart(candles) {
  for (const candle of candles) {
    const time = Number(candle.open_time_ms) / 1000;
    page.candles.set(time, {
      time,
      open: Number(candle.open),
      high: Number(candle.high),
      low: Number(candle.low),
      close: Number(candle.close),
    });
  }
  renderCandleCount();
  if (!window.LightweightCharts) return;
  const chart = LightweightCharts.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#374151" },
    timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 4, barSpacing: 12 },
  });
  page.series = chart.addSeries(LightweightCharts.CandlestickSeries, {
    upColor: "#1a7f37",
    downColor: "#c62828",
    wickUpColor: "#1a7f37",
    wickDownColor: "#c62828",
    borderVisible: false,
  });
  page.series.setData([...page.candles.values()].sort((a, b) => a.time - b.time));
}

async function refreshTicker() {
  if (!page.market) return;
  try {
    const ticker = await getJson(`/markets/${page.market}/ticker`);
    $("last-price").textContent = ticker.last_price || "–";
    $("best-bid").textContent = ticker.best_bid || "–";
    $("best-ask").textContent = ticker.best_ask || "–";
    $("volume-24h").textContent = ticker.volume_24h || "0";
    $("high-24h").textContent = ticker.high_24h || "–";
    $("low-24h").textContent = ticker.low_24h || "–";
  } catch (error) {
    console.warn(error);
  }
}

async function refreshIssuePrices() {
  try {
    const prices = await getJson("/issue-prices");
    const tier = (name) => name.replace("TIER_", "").toLowerCase();
    $("issue-prices").replaceChildren(
      ...prices.prices.map((now) => {
        const tr = document.createElement("tr");
        tr.append(cell(tier(now.tier)), cell(now.price));
        return tr;
      }),
    );
    $("issue-price-changes").replaceChildren(
      ...prices.changes.slice(-10).reverse().map((change) => {
        const tr = document.createElement("tr");
        tr.append(cell(timeOf(change.time_ms)), cell(tier(change.tier)), cell(change.price));
        return tr;
      }),
    );
  } catch (error) {
    console.warn(error);
  }
}

function onBook(message) {
  const update = JSON.parse(message.data);
  if (update.snapshot) {
    page.bids.clear();
    page.asks.clear();
    applyLevels(page.bids, update.snapshot.bids);
    applyLevels(page.asks, update.snapshot.asks);
  } else {
    applyLevels(page.bids, update.changes.bids);
    applyLevels(page.asks, update.changes.asks);
  }
  renderBook();
  if (bookChecksum() !== update.checksum) {
    resync("the book's checksum did not match");
    return;
  }
  page.checks += 1;
  $("checksum-state").dataset.checks = String(page.checks);
  $("checksum-state").textContent = `checksum verified (${page.checks})`;
  const best = (side, order) => (sortedLevels(side, order)[0] || ["–"])[0];
  $("best-bid").textContent = best(page.bids, "high");
  $("best-ask").textContent = best(page.asks, "low");
  setState("live", "live");
}

// Opens the stream after `fromSeq`: the trades after it, then a snapshot, then live.
function openStream(fromSeq) {
  const url = `${API}/markets/${page.market}/stream?depth=${BOOK_DEPTH}&from_seq=${fromSeq}`;
  const source = new EventSource(url);
  page.source = source;
  source.addEventListener("book", onBook);
  source.addEventListener("trade", (message) => addTrades([JSON.parse(message.data)]));
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (the server stopped, or the journal no longer holds where we were).
      resync("the stream was refused");
    } else {
      setState("reconnecting", "reconnecting…");
    }
  };
}

// Starts again from fresh state, saying so on the page.
function resync(why) {
  setState("resyncing", `resyncing: ${why}`);
  if (page.source) page.source.close();
  page.source = null;
  setTimeout(() => start().catch(failed), 1000);
}

function failed(error) {
  setState("error", `cannot load the market: ${error.message}; retrying`);
  setTimeout(() => start().catch(failed), 5000);
}

async function start() {
  const wanted = new URLSearchParams(location.search).get("market");
  const { markets } = await getJson("/markets");
  if (!markets.length) throw new Error("the exchange has no market");
  page.market = (markets.find((market) => market.name === wanted) || markets[0]).name;
  $("market-name").textContent = page.market;
  document.title = `divmid ${page.market}`;
  const recent = await getJson(`/markets/${page.market}/trades?limit=${TRADES_SHOWN}`);
  page.trades = [];
  addTrades(recent.trades);
  if (!page.series) {
    const { candles } = await getJson(`/markets/${page.market}/candles?interval=1m`);
    setUpChart(candles);
  }
  openStream(recent.next_from_seq);
  refreshTicker();
}

start().catch(failed);
refreshIssuePrices();
setInterval(refreshTicker, TICKER_EVERY_MS);
setInterval(refreshIssuePrices, ISSUE_PRICES_EVERY_MS);
