// The dashboard's entry point: the header, sign-in, and the routes on the
// URL's fragment (#/, #/orders, #/orders/12, #/new), so that a reload or
// the back button keeps the place and the server serves one page.

import { h, replace } from "./dom.js";
import { session, signIn, forget } from "./api.js";
import * as live from "./live.js";
import { overview } from "./overview.js";
import { ordersTable } from "./orders.js";
import { orderPage, createPage } from "./order.js";

const main = document.getElementById("main");
let leave = null;

function route() {
  leave?.();
  leave = null;
  const path = location.hash.replace(/^#/, "") || "/";
  const s = session();
  header(s);
  if (!s || path === "/signin") {
    live.stop();
    signInPage();
    return;
  }
  let match;
  if (path === "/") leave = overview(main);
  else if (path === "/orders" || path.startsWith("/orders?")) leave = ordersTable(main, path);
  else if ((match = /^\/orders\/(\d+)$/.exec(path))) leave = orderPage(main, match[1]);
  else if (path === "/new") leave = createPage(main);
  else replace(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
  main.focus({ preventScroll: true });
}

function header(s) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!s) {
    replace(nav);
    replace(who);
    return;
  }
  const here = location.hash || "#/";
  const link = (href, text) =>
    h("a", { href, "aria-current": here === href || (href !== "#/" && here.startsWith(href)) ? "page" : null }, text);
  replace(nav, link("#/", "Overview"), link("#/orders", "Orders"), s.canWrite && link("#/new", "New order"));
  replace(
    who,
    h("span", { id: "live-state", "aria-live": "polite" }, liveText()),
    h("span", { class: "access", id: "access" }, s.canWrite ? "read and write" : "read only",
      s.scoped ? " · own orders" : ""),
    h("button", { type: "button", id: "signout", onclick: () => { forget(); live.stop(); location.hash = "#/signin"; } }, "Sign out"),
  );
}

/** The state of live updates, for the header. */
function liveText() {
  const mode = live.status().mode;
  const text = { live: "live", connecting: "connecting…", refresh: "refreshing every 5 s", off: "" }[mode];
  return text ? [h("span", { class: `dot ${mode}` }), ` ${text}`] : "";
}

live.subscribe((event) => {
  const box = document.getElementById("live-state");
  if (event.type === "live.status" && box) replace(box, liveText());
});

function signInPage() {
  // Kept until the next sign-in: the page may be drawn again meanwhile.
  const reason = sessionStorage.getItem("commandes.reason");
  const error = h("p", { class: "error", id: "signin-error", role: "alert" }, reason || "");
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", required: true,
    "aria-describedby": "token-help signin-error",
  });
  const form = h("form", { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("label", { for: "token" }, "API token or JWT"),
    input,
    h("p", { class: "help", id: "token-help" },
      "Paste a token. It is kept in this tab only (session storage) and sent to this service only."),
    h("button", { type: "submit" }, "Sign in"),
    error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await signIn(input.value.trim());
      sessionStorage.removeItem("commandes.reason");
      live.start();
      location.hash = "#/";
      route();
    } catch (err) {
      error.textContent = err.status === 401 ? "This token was refused (401)."
        : err.status === 403 ? "This token may not read orders (403)."
        : `Sign-in failed: ${err.message}`;
      input.focus();
    }
  });
  replace(main, form);
  input.focus();
}

window.addEventListener("hashchange", route);
if (session()) live.start();
route();
