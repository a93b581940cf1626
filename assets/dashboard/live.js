// Live updates: the order events as they happen, for every open view.
//
// The stream (`GET /events/stream`, server-sent events) needs the token in
// an `Authorization` header, which `EventSource` cannot send, so it is read
// with fetch() and parsed here. A customer-scoped token may not read the
// stream (403): for it the views refresh what they show every few seconds
// instead. The first connection asks for `after=latest` (only what comes;
// the opening block's `id:` is the position to resume from). When the
// stream is unavailable (a 503 past the subscriber cap, a dropped
// connection) it reconnects with `Last-Event-ID`, so nothing is missed or
// repeated, after the stream's `retry:` hint, doubling while it fails.

import { session, signedOut } from "./api.js";

const REFRESH_MS = 5000;
const listeners = new Set();
const MAX_DELAY_MS = 30000;
let state = { mode: "off", received: 0, lastId: null, retry: 2000 };
let controller = null;

/** Calls `fn(event)` for every event (and `fn({type: "refresh"})` in refresh
 * mode); returns the function that stops it. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** `{mode, received}`: "live", "connecting", "refresh" or "off". */
export function status() {
  return { ...state };
}

function emit(event) {
  for (const fn of [...listeners]) {
    try { fn(event); } catch (e) { console.error(e); }
  }
}

function setMode(mode) {
  state.mode = mode;
  emit({ type: "live.status" });
}

/** Starts following events (once per sign-in). */
export function start() {
  stop();
  controller = new AbortController();
  const s = session();
  if (!s) return;
  if (s.scoped) refreshLoop(controller.signal);
  else streamLoop(controller.signal);
}

export function stop() {
  controller?.abort();
  controller = null;
  state = { mode: "off", received: 0, lastId: null, retry: 2000 };
}

async function refreshLoop(signal) {
  setMode("refresh");
  while (!signal.aborted) {
    await sleep(REFRESH_MS, signal);
    if (!signal.aborted) emit({ type: "refresh" });
  }
}

async function streamLoop(signal) {
  let delay = state.retry;
  while (!signal.aborted) {
    if (state.mode !== "refresh") setMode("connecting");
    try {
      const headers = { Authorization: `Bearer ${session()?.token}`, Accept: "text/event-stream" };
      // The first time, from the present (the stream would otherwise
      // replay every event kept, up to 30 days of them).
      let path = "/events/stream?after=latest";
      if (state.lastId !== null) {
        headers["Last-Event-ID"] = state.lastId;
        path = "/events/stream";
      }
      const response = await fetch(path, { headers, signal, cache: "no-store" });
      if (response.status === 401) { signedOut(); return; }
      if (response.status === 403) { refreshLoop(signal); return; }
      if (!response.ok || !response.body) throw new Error(`stream: HTTP ${response.status}`);
      // Whatever changed while disconnected is in the stream (resumed
      // with Last-Event-ID), except before the first connection: views
      // reload once to be sure.
      if (state.mode === "refresh") emit({ type: "refresh" });
      setMode("live");
      await read(response.body, signal);
      delay = state.retry;
    } catch (e) {
      if (signal.aborted) return;
      console.warn(e);
    }
    // Dropped or refused (the subscriber cap, a restart): the views
    // refresh themselves while it tries again.
    setMode("refresh");
    await sleep(delay, signal);
    emit({ type: "refresh" });
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

/** Parses `text/event-stream` (fields `id`, `event`, `data`, `retry`;
 * comments are the heartbeat). A block with an `id` and no `data` only
 * moves the position (the opening block of `after=latest`). */
async function read(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
  let buffer = "";
  let event = { data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        dispatch(event);
        event = { data: [] };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") event.data.push(text);
        else if (field === "id") event.id = text;
        else if (field === "event") event.type = text;
        else if (field === "retry" && /^\d+$/.test(text)) state.retry = Number(text);
      }
    }
  }
}

function dispatch(raw) {
  if (raw.id !== undefined) state.lastId = raw.id;
  if (!raw.data.length) return;
  let item;
  try { item = JSON.parse(raw.data.join("\n")); } catch { return; }
  state.received += 1;
  emit(item);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
