// The bank's API over fetch: the session cookie goes along, errors arrive as problems.

/** An RFC 9457 problem from the API (status 0: no connection). */
export class ApiError extends Error {
  constructor(status, problem = {}, retryAfter = null) {
    super(problem.detail || problem.title || `Request failed (${status})`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter ? Number(retryAfter) : null;
  }

  /** [{field, message}] as the API listed them. */
  get errors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }

  /** What to tell a person about this error, in a sentence. */
  get explanation() {
    if (this.status === 0) return "No connection. Check your signal and try again.";
    if (this.status >= 500) {
      return `Something went wrong on our side (error ${this.status}). Please try again in a minute.`;
    }
    return this.problem.detail || this.problem.title || `The request failed (${this.status}).`;
  }
}

let onSignedOut = () => {};
/** What to do when the API says the session has ended (401). */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

/**
 * Call the API; resolve with the JSON body, or null for 204. With `meta: true`
 * resolve with {data, savedAt} where savedAt is set when the answer came from the
 * phone's copy because there was no connection.
 */
export async function api(path, { method = "GET", body, meta = false, signal } = {}) {
  const headers = { accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    throw new ApiError(0, { title: "Offline" });
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (response.status !== 204 && type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { title: response.statusText };
    const error = new ApiError(response.status, problem, response.headers.get("retry-after"));
    if (response.status === 401 && !path.startsWith("/api/auth/")) onSignedOut();
    throw error;
  }
  if (meta) {
    const saved = response.headers.get("x-fairshare-saved-at");
    const offline = response.headers.get("x-fairshare-offline") === "1";
    return { data, savedAt: offline && saved ? new Date(saved) : null };
  }
  return data;
}

/** Problems as {field: message}, and those tied to no field as a list. */
export function splitErrors(error, knownFields) {
  const byField = {};
  const other = [];
  for (const { field, message } of error.errors) {
    const name = String(field || "").split(".").pop();
    if (knownFields.includes(name) && !byField[name]) byField[name] = message;
    else other.push(message.replace(/^Value error, /, ""));
  }
  return { byField, other };
}
