// HTTP calls to the gateway: the API key as a Bearer header, and one error type for every failure.

const KEY_STORAGE = "voice-playground.api-key";

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(value) {
  // sessionStorage only: the key leaves with the tab and is never written to disk by the page.
  if (value) sessionStorage.setItem(KEY_STORAGE, value);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export class ApiError extends Error {
  // The gateway's envelope {error: {code, message, field, status}, request_id}; OpenAI-style routes
  // answer {error: {message, type, param, code}}, whose `param` names the field.
  constructor(status, error = {}, requestId = null) {
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || error.type || null;
    this.field = error.field ?? error.param ?? null;
    this.requestId = requestId;
  }

  get unauthorized() {
    return this.status === 401 || this.status === 403;
  }
}

export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy page or a bare status
  }
  const error = body && typeof body.error === "object" ? body.error : { message: body?.detail };
  if (!error.message) error.message = `${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, error, body?.request_id ?? response.headers.get("X-Request-ID"));
}

export function authHeaders(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

// fetch with the key; resolves to the Response when it is 2xx, throws ApiError otherwise.
export async function call(path, { method = "GET", body, json, signal, headers = {} } = {}) {
  const init = { method, signal, headers: authHeaders(headers) };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { code: "unreachable", message: "The service did not answer: is it running?" });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJson(path, options) {
  return (await call(path, options)).json();
}
