// The Audit page (admins): who promoted, rolled back, ran or stopped jobs, changed people — the service's audit log
// (GET /v1/admin/audit, serve/audit.py), newest first, filtered by person and day.

import {api, el, page} from "./api.js";
import {route} from "./router.js";
import {kept, keep} from "./state.js";

export const nav = [["#/audit", "Audit", 95, "admin"]];

async function auditPage(current) {
  const f = kept("audit");
  const q = new URLSearchParams({limit: "200"});
  if (f.who) q.set("who", f.who);
  if (f.since) q.set("since", f.since);
  const log = await api("GET", "/v1/admin/audit?" + q);
  if (!current()) return false;
  const form = el("form", {class: "filters", on: {submit: ev => {
    ev.preventDefault();
    const d = new FormData(ev.target);
    keep("audit", {who: d.get("who") || "", since: d.get("since") || ""});
    route();
  }}}, el("input", {name: "who", placeholder: "person", value: f.who || "", "aria-label": "person"}),
     el("input", {name: "since", type: "date", value: f.since || "", "aria-label": "since"}),
     el("button", {type: "submit"}, "Show"));
  const rows = log.entries.map(e => el("tr", {}, el("td", {}, e.when), el("td", {}, e.who), el("td", {}, e.action),
    el("td", {class: "status-" + e.outcome}, e.outcome + (e.status ? ` (${e.status})` : ""))));
  page.replaceChildren(el("h1", {}, "Audit"), form,
    rows.length ? el("div", {class: "scroll"}, el("table", {class: "audit"},
      el("thead", {}, el("tr", {}, ["when (UTC)", "who", "what", "outcome"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows))) : el("p", {}, "Nothing recorded yet."));
  return false;
}

export const pages = {audit: auditPage};
