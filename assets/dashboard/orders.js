// The orders table: filters, sort, cursor paging through the `Link`
// header, and rows that follow the event stream, marked once they changed
// after the page was loaded.

import { h, replace, when, badge, STATUSES, notify } from "./dom.js";
import { call, query, nextLink } from "./api.js";
import { fieldErrors, showFieldErrors } from "./form.js";
import * as live from "./live.js";

const FILTERS = ["status", "customer_id", "min_amount", "max_amount", "created_from", "created_to", "sort", "limit", "order_id"];
const SORTS = [
  ["-created_at", "newest first"], ["created_at", "oldest first"],
  ["-updated_at", "recently changed first"], ["updated_at", "least recently changed first"],
  ["-total_amount", "largest amount first"], ["total_amount", "smallest amount first"],
  ["-id", "highest id first"], ["id", "lowest id first"],
];

export function ordersTable(main, path) {
  const params = new URLSearchParams(path.split("?")[1] || "");
  const form = filterForm(params);
  const body = h("tbody", {});
  const table = h("table", { class: "orders", id: "orders" },
    h("caption", { class: "sr-only" }, "Orders"),
    h("thead", {}, h("tr", {},
      ["Order", "Customer", "Status", "Amount", "Created", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  const info = h("p", { class: "page-info", id: "page-info", "aria-live": "polite" });
  const news = h("p", { class: "news", id: "news", hidden: true });
  const prev = h("button", { type: "button", id: "prev", disabled: true }, "← Previous");
  const next = h("button", { type: "button", id: "next", disabled: true }, "Next →");
  replace(main,
    h("h1", {}, "Orders"),
    form,
    news,
    h("div", { class: "table-wrap" }, table),
    h("nav", { class: "pager", "aria-label": "Pages" }, prev, info, next));

  const changed = new Set(); // ids changed since the page loaded
  const firstSeen = new Map(); // id -> updated_at when first shown (refresh mode)
  const rows = new Map(); // id -> <tr>
  const pages = []; // the URLs of the pages before this one
  let current = null;
  let following = null;
  let created = 0;

  const base = () => {
    const p = {};
    for (const k of FILTERS) if (k !== "order_id") p[k] = params.get(k) || "";
    p.limit ||= "20";
    return `/commandes${query(p)}`;
  };

  const render = (orders) => {
    rows.clear();
    if (!orders.length) {
      replace(body, h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No orders match.")));
      return;
    }
    replace(body, orders.map((o) => {
      if (!firstSeen.has(o.id)) firstSeen.set(o.id, o.updated_at);
      else if (firstSeen.get(o.id) !== o.updated_at) changed.add(o.id);
      const tr = row(o, changed.has(o.id));
      rows.set(o.id, tr);
      return tr;
    }));
  };

  // Loads may overlap (a click while a refresh runs): only the latest
  // one draws.
  let ticket = 0;
  const load = async (url) => {
    const mine = ++ticket;
    current = url;
    showFieldErrors(form, {});
    let orders = [];
    try {
      const orderId = params.get("order_id");
      if (orderId) {
        // An exact look-up: order ids are unique.
        try {
          const { data } = await call("GET", `/commandes/order/${encodeURIComponent(orderId)}`);
          orders = [data];
        } catch (e) {
          if (e.status !== 404) throw e;
        }
        if (mine !== ticket) return;
        following = null;
        info.textContent = `order_id = ${orderId}`;
      } else {
        const { data, response } = await call("GET", url);
        if (mine !== ticket) return;
        following = nextLink(response);
        orders = data;
        info.textContent = data.length ? `Page ${pages.length + 1} · ${data.length} orders` : `Page ${pages.length + 1}`;
      }
    } catch (e) {
      if (mine !== ticket) return;
      current = null;
      following = null;
      if (e.status === 422) showFieldErrors(form, fieldErrors(e));
      else notify(e.message, "error");
    }
    render(orders);
    prev.disabled = pages.length === 0;
    next.disabled = !following;
  };

  next.addEventListener("click", () => { pages.push(current); load(following); });
  prev.addEventListener("click", () => load(pages.pop()));
  news.addEventListener("click", () => { created = 0; news.hidden = true; pages.length = 0; load(base()); });

  const stop = live.subscribe((event) => {
    if (event.type === "refresh") return current && load(current);
    const data = event.data;
    if (!data || !data.id) return;
    changed.add(data.id);
    if (event.type === "order.created") {
      created += 1;
      replace(news, h("button", { type: "button", id: "show-new" },
        `${created} new order${created === 1 ? "" : "s"} since this page loaded: show the first page`));
      news.hidden = false;
      return;
    }
    const tr = rows.get(data.id);
    if (!tr) return;
    const fresh = row(data.order, true, event.type === "order.deleted");
    tr.replaceWith(fresh);
    rows.set(data.id, fresh);
  });

  load(base());
  return stop;
}

function row(o, changed, deleted = false) {
  return h("tr", { "data-id": o.id, class: [changed && "changed", deleted && "deleted"].filter(Boolean).join(" ") },
    h("td", {},
      changed && h("span", { class: "marker", title: "changed since this page loaded" }, "●", h("span", { class: "sr-only" }, " changed ")),
      deleted ? h("s", {}, o.order_id) : h("a", { href: `#/orders/${o.id}` }, o.order_id)),
    h("td", {}, o.customer_id),
    h("td", {}, deleted ? h("span", { class: "badge deleted" }, "deleted") : badge(o.status)),
    h("td", { class: "num" }, o.total_amount),
    h("td", {}, when(o.created_at)),
    h("td", {}, when(o.updated_at)));
}

function filterForm(params) {
  const field = (name, label, input) => h("div", { class: "field", "data-field": name },
    h("label", { for: `f-${name}` }, label), input, h("p", { class: "field-error", id: `f-${name}-error` }));
  const text = (name, attrs = {}) => h("input", {
    id: `f-${name}`, name, value: params.get(name) || "", "aria-describedby": `f-${name}-error`, ...attrs,
  });
  const select = (name, options, empty) => h("select", { id: `f-${name}`, name, "aria-describedby": `f-${name}-error` },
    empty && h("option", { value: "" }, empty),
    options.map(([v, t]) => h("option", { value: v, selected: params.get(name) === v }, t)));
  const form = h("form", { class: "filters card", id: "filters", role: "search" },
    field("order_id", "Order id", text("order_id", { placeholder: "exact, e.g. CMD001" })),
    field("status", "Status", select("status", STATUSES.map((s) => [s, s]), "any")),
    field("customer_id", "Customer", text("customer_id")),
    field("min_amount", "Amount from", text("min_amount", { inputmode: "decimal" })),
    field("max_amount", "Amount to", text("max_amount", { inputmode: "decimal" })),
    field("created_from", "Created from", text("created_from", { type: "date" })),
    field("created_to", "Created to", text("created_to", { type: "date" })),
    field("sort", "Sort", select("sort", SORTS)),
    field("limit", "Per page", select("limit", [["20", "20"], ["50", "50"], ["100", "100"]])),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Apply"),
      h("button", { type: "reset", id: "clear" }, "Clear")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = {};
    for (const [k, v] of new FormData(form)) p[k] = String(v).trim();
    if (p.sort === "-created_at") p.sort = "";
    if (p.limit === "20") p.limit = "";
    location.hash = `#/orders${query(p)}`;
  });
  form.addEventListener("reset", (e) => { e.preventDefault(); location.hash = "#/orders"; });
  return form;
}
