// The service's per-field problems shown next to the fields they name.

import { h } from "./dom.js";

/** `{field: [messages]}` from a 422 (or a 409 that names a field). */
export function fieldErrors(error) {
  return error.fields ? error.fields() : {};
}

/**
 * Writes each message under the field `.field[data-field=name]` and marks
 * its input invalid; messages for no shown field go to the form's
 * `.form-error` (created when missing). `{}` clears them all.
 */
export function showFieldErrors(form, errors, general = "") {
  const rest = [];
  for (const box of form.querySelectorAll(".field[data-field]")) {
    const name = box.dataset.field;
    const messages = errors[name] || [];
    box.querySelector(".field-error").textContent = messages.join("; ");
    box.querySelector("input, select")?.setAttribute("aria-invalid", messages.length ? "true" : "false");
  }
  const shown = new Set([...form.querySelectorAll(".field[data-field]")].map((b) => b.dataset.field));
  for (const [name, messages] of Object.entries(errors)) {
    if (!shown.has(name)) rest.push(`${name}: ${messages.join("; ")}`);
  }
  let box = form.querySelector(".form-error");
  if (!box) {
    box = h("p", { class: "form-error error", role: "alert" });
    form.append(box);
  }
  box.textContent = [general, ...rest].filter(Boolean).join(" · ");
  const first = form.querySelector("[aria-invalid=true]");
  first?.focus();
}

/** A labelled input with a place for its error. */
export function field(name, label, input, help) {
  input.id ||= `in-${name}`;
  input.name = name;
  input.setAttribute("aria-describedby", `${input.id}-error${help ? ` ${input.id}-help` : ""}`);
  return h("div", { class: "field", "data-field": name },
    h("label", { for: input.id }, label),
    input,
    help && h("p", { class: "help", id: `${input.id}-help` }, help),
    h("p", { class: "field-error", id: `${input.id}-error` }));
}
