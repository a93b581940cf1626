// Building the page from data. Text always goes in as text nodes, never as
// markup: an order's fields come from clients and must not become HTML.

/** An element with attributes (`on*` keys become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element (the chart). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  append(el, children);
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Shows a short message to every reader, screen readers included. It
 * hides by itself (errors stay a little longer, to be read), and at once
 * with its close button or Escape, so it never covers the controls for
 * long. */
export function notify(text, kind = "info") {
  const box = document.getElementById("toast");
  box.className = `toast ${kind}`;
  replace(box, h("span", {}, text),
    h("button", { type: "button", class: "close", "aria-label": "Dismiss the message", onclick: dismiss }, "×"));
  clearTimeout(notify.timer);
  notify.timer = setTimeout(dismiss, kind === "error" ? 8000 : 4000);
}

/** Hides the message of `notify`. */
export function dismiss() {
  clearTimeout(notify.timer);
  const box = document.getElementById("toast");
  box.replaceChildren();
  box.className = "toast";
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && document.getElementById("toast")?.hasChildNodes()) dismiss();
});

/** `2026-11-25T19:09:25.123456Z` as `2026-11-25 19:09:25` (UTC). */
export function when(stamp) {
  return stamp ? stamp.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "";
}

/** A status as a coloured label. */
export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

export const STATUSES = ["pending", "processing", "completed", "cancelled"];

/** The statuses an order may move to (the service's rule, for the buttons;
 * the service still decides). */
export const TRANSITIONS = {
  pending: ["processing", "cancelled"],
  processing: ["completed", "cancelled"],
  completed: [],
  cancelled: [],
};
