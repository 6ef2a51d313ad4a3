// What the pages over people's decisions share (Occurrences, Individuals, Deployments): the tables they read, picked
// from those the service knows and kept for the session; who decides (the decisions log keeps the name); their
// filters form; a snip fetched with the token.

import {authHeaders, el} from "./api.js";
import {tablesPicker} from "./pickers.js";
import {route} from "./router.js";

export function occTables() { return sessionStorage.getItem("trapline-occ-tables") || ""; }

function who() { return sessionStorage.getItem("trapline-occ-who") || ""; }

// What every decision sends besides its label: the tables, and who decides (the log keeps the name).
export function occDecision() {
  return {...(occTables() ? {tables: occTables()} : {}), ...(who() ? {who: who()} : {})};
}

export function occQuery(extra = {}) {
  const q = new URLSearchParams();
  if (occTables()) q.set("tables", occTables());
  for (const [k, v] of Object.entries(extra)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q;
}

// What a people page lists, or (when the tables cannot be read: none named, none there) the empty list and why: the
// page still draws its filters form, where the tables are picked.
export async function orProblem(request, empty) {
  try { return [await request, null]; } catch (e) { return [empty, e.message]; }
}

// The tables picked from those the service knows (`where`, GET /v1/locations); "" is the recorder's tables of the
// serve config (the routes' default); a path typed only after "another…".
export function tablesField(where, id = null, onPick = null) {
  return tablesPicker(where, {id, name: "tables", value: occTables(), blank: "the recorder's tables (default)", onPick});
}

export function whoField() {
  return el("input", {type: "text", name: "who", placeholder: "your name (for the decisions log)", value: who(),
                      "aria-label": "your name"});
}

// The tables and the name are shared by the people pages; `keep` names the form's other fields kept under `key`.
export function peopleForm(key, keep, ...fields) {
  const apply = ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    sessionStorage.setItem("trapline-occ-tables", f.get("tables") || "");
    sessionStorage.setItem("trapline-occ-who", f.get("who") || "");
    if (key) {
      const kept = {};
      for (const k of keep) if (f.get(k)) kept[k] = f.get(k);
      sessionStorage.setItem(key, JSON.stringify(kept));
    }
    route();
  };
  return el("form", {class: "occ-filters", on: {submit: apply}}, ...fields, el("button", {type: "submit"}, "Show"));
}

// The filters form of the pages over people's decisions (occurrences, individuals): the tables, a camera, a label,
// the page's own `selects` and who decides; the filters kept under `key`. `tablesPicked(path)` hears a new tables.
export function peopleFilters(where, key, filters, selects, tablesPicked = null) {
  const input = (name, placeholder) => el("input", {type: "text", name, placeholder, value: filters[name] || "", "aria-label": name});
  return peopleForm(key, ["camera", "label", ...selects.map(s => s.getAttribute("name"))], tablesField(where, null, tablesPicked),
                    input("camera", "camera"), input("label", "label"), ...selects, whoField());
}

// The page's CSP allows images from data: URLs only besides its own origin, and an <img> sends no token: a snip is
// fetched with the token and shown as a data: URL.
export async function snipImage(url, title) {
  const img = el("img", {class: "snip", alt: title, title});
  try {
    const r = await fetch(url, {headers: authHeaders()});
    if (!r.ok) throw new Error(r.statusText);
    const blob = await r.blob();
    img.src = await new Promise((done, fail) => {
      const reader = new FileReader();
      reader.onload = () => done(reader.result);
      reader.onerror = fail;
      reader.readAsDataURL(blob);
    });
  } catch (e) { img.alt = `${title} (no snip: ${e.message})`; img.classList.add("missing"); }
  return img;
}
