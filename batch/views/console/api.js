// What every page shares: the API client (with the token, state.js), the DOM builder, and the page's two fixed places
// (the page and the status line). The console is static files over the service's own API; no build step, nothing
// from elsewhere.

import {token} from "./state.js";

export const page = document.getElementById("page");
const message = document.getElementById("message");
export const enc = encodeURIComponent;

export function authHeaders() { return token() ? {Authorization: "Bearer " + token()} : {}; }

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") { for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn); }
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

export async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = data.error || {};
    const e = new Error(`${err.message || r.statusText} (${r.status} ${err.type || ""})`);
    e.fields = err.fields || (err.field ? [err.field] : []);  // the field paths the service's one formatter named
    throw e;
  }
  return data;
}

export function say(text) { message.textContent = text || ""; }

export function statusCell(status) { return el("span", {class: "status-" + status}, status); }
