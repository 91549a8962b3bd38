// The one way the portal talks to tsps: JSON over fetch with the session cookie, the
// CSRF token on every unsafe request, and API errors turned into ApiError.

let csrfToken = null;
let onUnauthorized = () => {};

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** Called when a request answers 401 (the session expired): the app shows the login. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** An error answer of the API: `{"error": {"code", "message", "field"?, "details"?}}`. */
export class ApiError extends Error {
  constructor(status, code, message, details = [], field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.field = field;
  }

  /** Every problem as {field, reason}: the 422 details, or the one field named. */
  issues() {
    if (this.details && this.details.length) return this.details;
    if (this.field) return [{ field: this.field, reason: this.message }];
    return [];
  }
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * api('GET', '/auth/me'), api('POST', path, body), api('POST', path, text,
 * {contentType: 'text/csv'}). `path` is under /api/v1. Resolves to the parsed JSON (null
 * for 204); rejects with ApiError. `allow401` skips the session-expired handler.
 */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (body !== undefined) {
    if (opts.contentType) {
      headers['Content-Type'] = opts.contentType;
      payload = body;
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  if (!SAFE.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, 'network', 'tsps cannot be reached; check the connection');
  }
  if (res.status === 401 && !opts.allow401) onUnauthorized();
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

async function toError(res) {
  let body = null;
  try {
    body = await res.json();
  } catch (_) { /* not JSON: fall through */ }
  const e = body && body.error;
  if (e) return new ApiError(res.status, e.code || 'error', e.message || res.statusText, e.details || [], e.field || null);
  return new ApiError(res.status, 'http', `${res.status} ${res.statusText}`);
}

/** Paths of the logged-in user's own resources. */
export function userPath(user, rest = '') {
  return `/tenants/${user.tenant_id}/users/${user.user_id}${rest}`;
}

export function tenantPath(user, rest = '') {
  return `/tenants/${user.tenant_id}${rest}`;
}
