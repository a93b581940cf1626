// The overview: the /stats figures per status, the chart of the time
// series, and a live counter of the events seen since the page opened.

import { h, replace, STATUSES, badge } from "./dom.js";
import { call, query } from "./api.js";
import { chart } from "./chart.js";
import * as live from "./live.js";

const RANGES = { day: 30, week: 12, month: 12 };

export function overview(main) {
  const stats = h("section", { class: "cards", id: "stats", "aria-label": "Figures" }, "Loading…");
  const counter = h("p", { class: "live", id: "live", "aria-live": "polite" });
  const interval = h("select", { id: "interval", name: "interval" },
    h("option", { value: "day" }, "per day, last 30 days"),
    h("option", { value: "week" }, "per week, last 12 weeks"),
    h("option", { value: "month" }, "per month, last 12 months"));
  const plot = h("div", { id: "chart" }, "Loading…");
  replace(main,
    h("h1", {}, "Overview"),
    counter,
    stats,
    h("section", { class: "card" },
      h("div", { class: "row" }, h("h2", {}, "Orders over time"),
        h("label", { for: "interval", class: "inline" }, "Show ", interval)),
      plot));

  let seen = 0;
  const showCounter = () => {
    replace(counter, h("strong", { id: "live-count" }, seen),
      ` change${seen === 1 ? "" : "s"} since this page opened`);
  };

  const loadStats = async () => {
    const { data } = await call("GET", "/stats");
    replace(stats,
      card("All orders", data.total_orders, `${data.total_amount} in total, ${data.average_amount} on average`, "total"),
      STATUSES.map((s) => card(badge(s), data.by_status[s], data.amount_by_status[s], s)));
  };
  // The chart is drawn for the width it has (its text keeps its size):
  // drawn again, from the same figures, when that width changes.
  let drawn = null;
  const draw = () => {
    if (!drawn) return;
    drawn.width = plot.clientWidth;
    replace(plot, chart(drawn.data, drawn.width));
  };
  let frame = 0;
  const resized = new ResizeObserver(() => {
    if (!drawn || plot.clientWidth === drawn.width) return;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(draw);
  });
  resized.observe(plot);
  const loadChart = async () => {
    const kind = interval.value;
    const from = new Date();
    if (kind === "day") from.setUTCDate(from.getUTCDate() - RANGES.day + 1);
    if (kind === "week") from.setUTCDate(from.getUTCDate() - 7 * (RANGES.week - 1));
    if (kind === "month") from.setUTCMonth(from.getUTCMonth() - RANGES.month + 1, 1);
    try {
      const { data } = await call("GET", `/stats/timeseries${query({
        // Without `to`, the series ends with the bucket holding today.
        interval: kind, from: from.toISOString().slice(0, 10),
      })}`);
      drawn = { data, width: 0 };
      draw();
    } catch (e) {
      drawn = null;
      replace(plot, h("p", { class: "error" }, `No time series: ${e.message}`));
    }
  };
  interval.addEventListener("change", loadChart);

  let timer = null;
  const stop = live.subscribe((event) => {
    if (event.type === "live.status") return showCounter();
    if (event.type !== "refresh") seen += 1;
    showCounter();
    // Several events often come together: redraw once for them.
    clearTimeout(timer);
    timer = setTimeout(() => { loadStats().catch(() => {}); loadChart(); }, 300);
  });
  showCounter();
  loadStats().catch((e) => replace(stats, h("p", { class: "error" }, e.message)));
  loadChart();
  return () => { stop(); clearTimeout(timer); resized.disconnect(); cancelAnimationFrame(frame); };
}

function card(title, count, amount, key) {
  return h("div", { class: `card stat ${key}`, "data-status": key },
    h("h2", {}, title),
    h("p", { class: "count" }, count),
    h("p", { class: "amount" }, amount));
}
