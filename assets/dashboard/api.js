// Every call to the service goes through `call`: it adds the token, reads
// problem+json errors, and sends the person back to sign-in on any 401.

const KEY = "commandes.session";

/** The signed-in session for this tab: the token and what it may do. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY));
  } catch {
    return null;
  }
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

/** A failed call: `status`, the problem document, and the response. */
export class ApiError extends Error {
  constructor(response, problem) {
    super(problem?.detail || problem?.title || `HTTP ${response.status}`);
    this.status = response.status;
    this.problem = problem || {};
    this.response = response;
  }

  /** The messages of `errors[]` by field name. */
  fields() {
    const out = {};
    for (const e of this.problem.errors || []) {
      (out[e.field] ||= []).push(e.message);
    }
    return out;
  }
}

/** Sends a request; resolves to `{data, response}`, rejects with ApiError.
 * `token` overrides the session's (sign-in checks a token before keeping it). */
export async function call(method, path, { body, ifMatch, token, signal } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token ?? session()?.token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (ifMatch) headers["If-Match"] = ifMatch;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    signal,
  });
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const error = new ApiError(response, typeof data === "object" ? data : null);
    if (response.status === 401 && token === undefined) signedOut();
    throw error;
  }
  return { data, response };
}

/** The token was refused: forget it and show the sign-in. */
export function signedOut() {
  forget();
  sessionStorage.setItem("commandes.reason", "Your token was refused (401). Sign in again.");
  if (location.hash === "#/signin") window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = "#/signin";
}

/** The target of a `Link: <…>; rel="next"` header, if any. */
export function nextLink(response) {
  const link = response.headers.get("link") || "";
  const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link);
  return match ? match[1] : null;
}

/**
 * Checks a token and learns what it may do from `GET /whoami` (401: an
 * unknown token, 403: one that may not read): whether it may change orders
 * and whether it is limited to one customer. Nothing is probed with a
 * request that fails, so a sign-in leaves no error in the service's logs.
 */
export async function signIn(token) {
  const { data } = await call("GET", "/whoami", { token });
  const s = { token, canWrite: data.may_write === true, scoped: data.customer_id != null };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

/** Builds a query string from the non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
