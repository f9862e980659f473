// The service's REST, streaming and WebSocket API, as the console calls it.
// Paths are relative to the page, so the console works under a Serve route prefix too.

const KEY_ITEM = "forge-api-key";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || body?.error || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

// The key lives for this tab's session only (sessionStorage), never in a URL.
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM),
  set: (key) => sessionStorage.setItem(KEY_ITEM, key),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
};

// Called on a 401: the app asks for the key (see app.js).
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) { onUnauthorized = handler; }

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// `usedKey`: the key the request carried (null: none), so a refused key is told from a missing one.
async function errorOf(response, usedKey) {
  let body = {};
  try { body = await response.json(); } catch { body = { detail: response.statusText }; }
  if (response.status === 401) onUnauthorized(usedKey);
  return new ApiError(response.status, body);
}

export async function api(path, { method = "GET", json, signal } = {}) {
  const init = { method, signal, headers: headers(json === undefined ? {} : { "Content-Type": "application/json" }) };
  if (json !== undefined) init.body = JSON.stringify(json);
  const usedKey = apiKey.get();
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response, usedKey);
  return response.json();
}

// Every page of a paginated list (`next_offset`), joined.
export async function allPages(path, field) {
  const rows = [];
  let offset = 0;
  while (offset !== null && offset !== undefined) {
    const page = await api(`${path}?offset=${offset}&limit=1000`);
    rows.push(...page[field]);
    offset = page.next_offset;
  }
  return rows;
}

// A multipart upload with progress (fetch reports no upload progress; XMLHttpRequest does).
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    const usedKey = apiKey.get();
    request.open("POST", "api/upload_dataset");
    for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    request.onload = () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch { body = { detail: request.statusText }; }
      if (request.status === 401) onUnauthorized(usedKey);
      request.status < 300 ? resolve(body) : reject(new ApiError(request.status, body));
    };
    request.onerror = () => reject(new ApiError(0, { detail: "the upload could not reach the service" }));
    const form = new FormData();
    form.append("file", file);
    request.send(form);
  });
}

// POST /api/playground/generate/stream: calls onToken(text) per piece; resolves with the `done` event's data.
export async function generateStream(body, onToken, signal) {
  const usedKey = apiKey.get();
  const response = await fetch("api/playground/generate/stream", {
    method: "POST", signal, headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response, usedKey);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new ApiError(0, { detail: "the stream ended before the answer did" });
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null");
      if (name === "token") onToken(data.text);
      else if (name === "done") return data;
      else if (name === "error") throw new ApiError(data.status_code, data);
    }
  }
}

// A browser cannot set headers on a WebSocket: the key goes as a subprotocol, base64url-encoded
// (a subprotocol name allows those characters only), beside `forge`, which the server selects.
function keySubprotocol(key) {
  const bytes = new TextEncoder().encode(key);
  return "forge-key." + btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// /ws/training (one job's with jobId): onMessage(status) per change. Returns a function that closes it.
export function followFeed(jobId, onMessage, onClose = () => {}) {
  const url = new URL(jobId ? `ws/training?job_id=${encodeURIComponent(jobId)}` : "ws/training", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey.get();
  const socket = new WebSocket(url, key ? ["forge", keySubprotocol(key)] : []);
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = (event) => onClose(event);
  return () => socket.close();
}
