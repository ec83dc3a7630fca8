// The public /v1 API, with the session cookie (the browser sends it; no token
// is ever held by this code), and what the node offers (from its OpenAPI document).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onSignedOut = () => {};
export function whenSignedOut(callback) { onSignedOut = callback; }

/**
 * One request. `body`: an object (sent as JSON) or a Blob/File (sent raw with
 * its type). Every request carries the app's CSRF header: the node refuses a
 * cookie-authenticated change without it (or a same-origin Origin).
 */
export async function api(method, path, body) {
  const headers = { "X-P2PDM-CSRF": "1", Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body instanceof Blob) {
    headers["Content-Type"] = body.type || "application/octet-stream";
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "offline", "The node does not answer; is it running?");
  }
  if (response.status === 401) onSignedOut();
  if (!response.ok) {
    let code = `http_${response.status}`;
    let message = response.statusText || code;
    try {
      const error = (await response.json()).error;
      code = error.code;
      message = error.message;
    } catch (_) { /* not the API's error shape */ }
    throw new ApiError(response.status, code, message);
  }
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);
export const seg = (text) => encodeURIComponent(text);

let documentOfApi = null;

/** Read what the node offers once: controls of features it lacks stay hidden. */
export async function loadFeatures() {
  documentOfApi = await get("/v1/openapi.json");
  shapes = null;
}

const shape = (path) => path.replace(/\{[^}]*\}/g, "{}");
let shapes = null; // "{}"-normalised path -> its operations

/**
 * Whether the node has this operation, e.g. has("POST", "/v1/messages/{id}/reactions").
 * Parameter names do not matter: "/v1/requests/{peer}/accept" matches "{peer_id}".
 */
export function has(method, path) {
  if (!shapes) {
    shapes = new Map();
    for (const [known, operations] of Object.entries((documentOfApi && documentOfApi.paths) || {})) {
      shapes.set(shape(known), operations);
    }
  }
  const operations = shapes.get(shape(path));
  return Boolean(operations && operations[method.toLowerCase()]);
}

/** Whether a request body schema (e.g. "SendMessage") names a field (e.g. "reply_to"). */
export function accepts(schemaName, field) {
  const schemas = (documentOfApi && documentOfApi.components && documentOfApi.components.schemas) || {};
  const schema = schemas[schemaName];
  return Boolean(schema) && JSON.stringify(schema).includes(`"${field}"`);
}
