// A hand-drawn SVG chart of the time series: a bar per bucket for the
// number of orders, a line for their amount (its own scale, on the right).
// No library: about a hundred lines do what the overview needs.

import { h, svg } from "./dom.js";

const H = 240, PAD = { l: 44, r: 56, t: 12, b: 28 };

/** The chart of `buckets` (from GET /stats/timeseries), drawn `width`
 * pixels wide (so its text keeps its size on a phone), with a data table
 * for screen readers and exact figures. */
export function chart(series, width) {
  const W = Math.max(300, Math.round(width || 640));
  const buckets = series.buckets || [];
  const counts = buckets.map((b) => b.total_orders);
  const amounts = buckets.map((b) => Number(b.total_amount));
  const maxCount = niceMax(Math.max(1, ...counts), true);
  const maxAmount = niceMax(Math.max(1, ...amounts));
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  const step = buckets.length ? iw / buckets.length : iw;
  const x = (i) => PAD.l + i * step;
  const yCount = (v) => PAD.t + ih - (v / maxCount) * ih;
  const yAmount = (v) => PAD.t + ih - (v / maxAmount) * ih;

  const parts = [];
  for (const f of [0, 0.5, 1]) {
    const y = PAD.t + ih - f * ih;
    parts.push(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
    parts.push(svg("text", { x: PAD.l - 6, y: y + 4, class: "axis", "text-anchor": "end" }, fmtCount(maxCount * f)));
    parts.push(svg("text", { x: W - PAD.r + 6, y: y + 4, class: "axis amount" }, fmtAmount(maxAmount * f)));
  }
  buckets.forEach((b, i) => {
    const y = yCount(b.total_orders);
    parts.push(svg("rect", {
      x: x(i) + step * 0.15, y, width: Math.max(1, step * 0.7), height: PAD.t + ih - y, class: "bar",
    }, svg("title", {}, `${day(b.start)}: ${b.total_orders} orders, ${b.total_amount}`)));
  });
  if (buckets.length) {
    const points = amounts.map((a, i) => `${x(i) + step / 2},${yAmount(a)}`).join(" ");
    parts.push(svg("polyline", { points, class: "line" }));
    const labels = new Set([0, Math.floor((buckets.length - 1) / 2), buckets.length - 1]);
    for (const i of labels) {
      parts.push(svg("text", { x: x(i) + step / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, day(buckets[i].start)));
    }
  }
  const picture = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart", role: "img",
    "aria-label": `Orders and amounts per ${series.interval} from ${day(series.from)} to ${day(series.to)}`,
  }, ...parts);

  const table = h("details", { class: "data" },
    h("summary", {}, "Figures as a table"),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "from"), h("th", { scope: "col" }, "orders"), h("th", { scope: "col" }, "amount"))),
      h("tbody", {}, buckets.map((b) => h("tr", {}, h("td", {}, day(b.start)), h("td", { class: "num" }, b.total_orders), h("td", { class: "num" }, b.total_amount))))));
  const legend = h("p", { class: "legend" },
    h("span", { class: "key bar" }), "orders (left scale) ",
    h("span", { class: "key line" }), "amount (right scale)");
  return h("figure", { class: "chart-box" }, picture, legend, table);
}

/** A round top for a scale; for counts, one whose half is whole too. */
function niceMax(v, whole = false) {
  if (whole && v <= 2) return 2;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of whole ? [1, 2, 4, 5, 10] : [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtCount(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function fmtAmount(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(0);
}

function day(stamp) {
  return (stamp || "").slice(0, 10);
}
