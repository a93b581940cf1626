// One order: its fields, its history as a timeline, the buttons for the
// transitions its status allows, the edit form and delete; and the form
// that creates an order. Every change sends the ETag it was read with in
// `If-Match`, so a change someone else made meanwhile is a 412 that is
// shown, never silently overwritten.

import { h, replace, when, badge, notify, STATUSES, TRANSITIONS } from "./dom.js";
import { call, session } from "./api.js";
import { field, fieldErrors, showFieldErrors } from "./form.js";
import * as live from "./live.js";

const EDITABLE = ["order_id", "customer_id", "total_amount", "status"];
const LABELS = { order_id: "Order id", customer_id: "Customer", total_amount: "Amount", status: "Status" };

export function orderPage(main, id) {
  let order = null;
  let etag = null;
  let dirty = false;
  const notice = h("div", { id: "notice", class: "notice", role: "alert", hidden: true });
  const summary = h("section", { class: "card", id: "summary", "aria-label": "Order" });
  const actions = h("section", { class: "card", id: "actions", "aria-label": "Actions" });
  const timeline = h("ol", { class: "timeline", id: "history" });
  replace(main, h("p", {}, h("a", { href: "#/orders" }, "← Orders")), notice, summary, actions,
    h("section", { class: "card" }, h("h2", {}, "History"), timeline));

  const load = async () => {
    const { data, response } = await call("GET", `/commandes/${id}`);
    order = data;
    etag = response.headers.get("etag");
    dirty = false;
    notice.hidden = true;
    show();
    history();
  };

  const show = () => {
    replace(summary,
      h("h1", {}, order.order_id, " ", badge(order.status)),
      h("dl", { class: "fields", id: "fields" },
        item("Id", order.id), item("Order id", order.order_id), item("Customer", order.customer_id),
        item("Status", order.status), item("Amount", order.total_amount),
        item("Created", when(order.created_at)), item("Updated", when(order.updated_at))));
    if (!session()?.canWrite) {
      replace(actions, h("p", { class: "help" }, "Read-only token: this order cannot be changed from here."));
      return;
    }
    const moves = TRANSITIONS[order.status];
    replace(actions,
      h("h2", {}, "Status"),
      moves.length
        ? h("div", { class: "buttons", id: "transitions" }, moves.map((to) =>
          h("button", { type: "button", class: to === "cancelled" ? "danger" : "", "data-to": to, onclick: () => move(to) },
            to === "cancelled" ? "Cancel the order" : `Move to ${to}`)))
        : h("p", { class: "help" }, `A ${order.status} order is final.`),
      editForm(),
      h("h2", {}, "Delete"),
      h("button", { type: "button", class: "danger", id: "delete", onclick: confirmDelete }, "Delete this order…"));
  };

  const editForm = () => {
    const inputs = {
      order_id: h("input", { value: order.order_id, required: true, maxlength: 50 }),
      customer_id: h("input", { value: order.customer_id, required: true, maxlength: 50 }),
      total_amount: h("input", { value: order.total_amount, inputmode: "decimal", required: true }),
      status: h("select", {}, STATUSES.map((s) => h("option", { value: s, selected: s === order.status }, s))),
    };
    for (const [k, el] of Object.entries(inputs)) el.id = `edit-${k}`;
    const form = h("form", { id: "edit", class: "edit", novalidate: true },
      h("h2", {}, "Edit"),
      EDITABLE.map((k) => field(k, LABELS[k], inputs[k])),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Save changes")));
    form.addEventListener("input", () => { dirty = true; });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const patch = {};
      for (const k of EDITABLE) if (inputs[k].value !== String(order[k])) patch[k] = inputs[k].value;
      if (!Object.keys(patch).length) return notify("Nothing to save: no field was changed.");
      await change(form, "PUT", `/commandes/${id}`, patch);
    });
    return form;
  };

  const move = (to) => change(actions.querySelector("#edit"), "PUT", `/commandes/${id}/status`, { status: to });

  /** A change with If-Match; shows the outcome. */
  const change = async (form, method, path, body) => {
    if (form) showFieldErrors(form, {});
    try {
      const { data, response } = await call(method, path, { body, ifMatch: etag });
      order = data;
      etag = response.headers.get("etag");
      dirty = false;
      notify("Saved.", "ok");
      show();
      history();
    } catch (e) {
      if (e.status === 412) return lostRace();
      if (e.status === 404) return gone();
      if (e.status === 422 && form) return showFieldErrors(form, fieldErrors(e), "The service refused some values:");
      if (e.status === 409 && form) {
        // Duplicate order id, or a transition the status does not allow.
        const onStatus = e.problem.current_status !== undefined;
        const allowed = e.problem.allowed_transitions;
        const msg = onStatus
          ? `not allowed from ${e.problem.current_status}${allowed ? `: allowed ${allowed.length ? allowed.join(", ") : "none (final)"}` : ""}`
          : e.message;
        return showFieldErrors(form, { [onStatus ? "status" : "order_id"]: [msg] }, `Refused (409): ${e.message}`);
      }
      notify(e.message, "error");
    }
  };

  /** 412: someone changed the order since it was read. Show what changed
   * and offer to reload. */
  const lostRace = async () => {
    let now = null;
    try { now = (await call("GET", `/commandes/${id}`)).data; } catch (e) { if (e.status === 404) return gone(); }
    const diffs = now ? EDITABLE.filter((k) => String(now[k]) !== String(order[k])) : [];
    replace(notice,
      h("h2", {}, "Someone else changed this order (412)"),
      h("p", {}, "Your change was not saved: the order is no longer the version you read."),
      h("ul", { id: "race-diff" }, diffs.length
        ? diffs.map((k) => h("li", {}, h("strong", {}, LABELS[k]), `: was ${order[k]}, now ${now[k]}`))
        : h("li", {}, `Updated at ${when(now?.updated_at)}`)),
      h("button", { type: "button", id: "reload", onclick: () => load().catch((e) => notify(e.message, "error")) },
        "Reload the order (your edits are lost)"));
    notice.hidden = false;
    notice.querySelector("button").focus();
  };

  const gone = () => {
    replace(notice, h("h2", {}, "This order was deleted"), h("p", {}, h("a", { href: "#/orders" }, "Back to the orders")));
    notice.hidden = false;
    replace(actions);
  };

  const confirmDelete = () => {
    const dialog = h("dialog", { id: "confirm-delete", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, `Delete ${order.order_id}?`),
      h("p", {}, "The order is removed; its history stays readable. This cannot be undone."),
      h("form", { method: "dialog", class: "buttons" },
        h("button", { value: "cancel", id: "keep", autofocus: true }, "Keep it"),
        h("button", { value: "delete", class: "danger", id: "confirm" }, "Delete")));
    dialog.addEventListener("close", async () => {
      dialog.remove();
      if (dialog.returnValue !== "delete") return;
      try {
        await call("DELETE", `/commandes/${id}`, { ifMatch: etag });
        notify(`Deleted ${order.order_id}.`, "ok");
        location.hash = "#/orders";
      } catch (e) {
        if (e.status === 412) return lostRace();
        if (e.status === 404) return gone();
        notify(e.message, "error");
      }
    });
    document.body.append(dialog);
    dialog.showModal();
  };

  const history = async () => {
    try {
      const { data } = await call("GET", `/commandes/${id}/history?limit=1000`);
      replace(timeline, data.length ? data.map(step) : h("li", { class: "help" }, "No recorded changes (orders imported or from the demo data have none until they change)."));
    } catch (e) {
      replace(timeline, h("li", { class: "error" }, e.message));
    }
  };

  const stop = live.subscribe(async (event) => {
    const mine = event.type === "refresh" || String(event.data?.id) === String(id);
    if (!mine || !order) return;
    if (event.type === "order.deleted") return gone();
    if (dirty) {
      // Keep the person's edits: saving will be a 412 that explains.
      replace(notice, h("p", {}, "This order was just changed by someone else. ",
        h("button", { type: "button", onclick: () => load() }, "Reload")));
      notice.hidden = false;
      return;
    }
    const before = order.updated_at;
    try { await load(); } catch (e) { if (e.status === 404) return gone(); }
    if (order.updated_at !== before) {
      replace(notice, h("p", { class: "changed" }, `Changed by someone else at ${when(order.updated_at)}.`));
      notice.hidden = false;
    }
  });

  load().catch((e) => {
    if (e.status === 404) replace(main, h("h1", {}, "No such order"), h("p", {}, h("a", { href: "#/orders" }, "Back to the orders")));
    else notify(e.message, "error");
  });
  return stop;
}

function item(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function step(event) {
  const d = event.data || {};
  const what = {
    "order.created": () => `created (${d.order?.status}, ${d.order?.total_amount})`,
    "order.status_changed": () => `${d.from} → ${d.to}`,
    "order.updated": () => Object.entries(d.changes || {}).map(([k, c]) => `${k}: ${c.before} → ${c.after}`).join(", "),
    "order.deleted": () => "deleted",
  }[event.type];
  return h("li", { class: event.type.replace(".", "-") },
    h("time", { datetime: event.time }, when(event.time)),
    h("span", { class: "what" }, what ? what() : event.type),
    d.actor && h("span", { class: "who" }, d.actor));
}

export function createPage(main) {
  if (!session()?.canWrite) {
    replace(main, h("h1", {}, "New order"), h("p", {}, "Read-only token: orders cannot be created from here."));
    return null;
  }
  const inputs = {
    order_id: h("input", { id: "new-order_id", required: true, maxlength: 50 }),
    customer_id: h("input", { id: "new-customer_id", required: true, maxlength: 50 }),
    total_amount: h("input", { id: "new-total_amount", inputmode: "decimal", required: true, placeholder: "150.50" }),
    status: h("select", { id: "new-status" }, STATUSES.map((s) => h("option", { value: s }, s))),
  };
  const form = h("form", { id: "create", class: "card edit", novalidate: true },
    EDITABLE.map((k) => field(k, LABELS[k], inputs[k])),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showFieldErrors(form, {});
    const body = {};
    for (const k of EDITABLE) body[k] = inputs[k].value;
    try {
      const { data } = await call("POST", "/commandes", { body });
      notify(`Created ${data.order_id}.`, "ok");
      location.hash = `#/orders/${data.id}`;
    } catch (err) {
      if (err.status === 422) showFieldErrors(form, fieldErrors(err), "The service refused some values:");
      else if (err.status === 409) showFieldErrors(form, { order_id: [err.message] });
      else showFieldErrors(form, {}, err.message);
    }
  });
  replace(main, h("h1", {}, "New order"), form);
  inputs.order_id.focus();
  return null;
}
