// api.js -- the console's only way to the server: the /v1 API, with the
// bearer token the user gave (kept in this tab's sessionStorage only).

const KEY = 'saga.console.token';

/** An answer that is not 2xx, with the API's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  try { return sessionStorage.getItem(KEY); } catch { return null; }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(KEY, t);
    else sessionStorage.removeItem(KEY);
  } catch { /* storage disabled: the token lasts until the page reloads */ }
}

/** GET (or POST) `path`; resolves to the JSON body, rejects with ApiError. */
export async function api(path, method = 'GET') {
  const headers = {Accept: 'application/json'};
  const t = getToken();
  if (t) headers.Authorization = 'Bearer ' + t;
  let res;
  try {
    res = await fetch(path, {method, headers, cache: 'no-store', credentials: 'omit'});
  } catch (e) {
    throw new ApiError(0, 'unreachable', `saga serve cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!res.ok) {
    const e = body && typeof body.error === 'object' && body.error !== null ? body.error : null;
    throw new ApiError(res.status, e ? String(e.code) : `http_${res.status}`,
                       e ? String(e.message) : (text.slice(0, 300) || res.statusText));
  }
  return body;
}

/** Encodes one path segment. */
export const seg = encodeURIComponent;
