// What the pages over people's decisions share: the tables field (the tables every page reads, state.js), who decides
// (the decisions log keeps the name), their filters form; a snip fetched with the token.

import {authHeaders, el} from "./api.js";
import {tablesPicker} from "./pickers.js";
import {route} from "./router.js";
import {chooseTables, chosenTables, keep, setWho, signedIn, who} from "./state.js";

// What every decision sends besides its label: the tables, and who decides (the log keeps the name).
export function occDecision() {
  return {...(chosenTables() ? {tables: chosenTables()} : {}), ...(who() ? {who: who()} : {})};
}

// What a people page lists, or (when the tables cannot be read: none named, none there) the empty list and why: the
// page still draws its filters form, where the tables are picked.
export async function orProblem(request, empty) {
  try { return [await request, null]; } catch (e) { return [empty, e.message]; }
}

// The tables picked from those the service knows (`where`, GET /v1/locations), the same field on every page; "" is
// the service's default (`blank` says which); a path typed only after "another…".
export function tablesField(where, id = null, onPick = null, blank = "the recorder's tables (default)") {
  return tablesPicker(where, {id, name: "tables", value: chosenTables(), blank, onPick});
}

export function whoField() {
  const me = signedIn();
  if (me?.via === "person") return el("span", {class: "who"}, `deciding as ${me.name}`);  // the token signs
  return el("input", {type: "text", name: "who", placeholder: "your name (for the decisions log)", value: who(),
                      "aria-label": "your name"});
}

// The tables and the name are shared by every page (state.js); `names` are the form's other fields, kept under `key`.
export function peopleForm(key, names, ...fields) {
  const apply = ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    chooseTables(f.get("tables") || "");
    if (f.has("who")) setWho(f.get("who"));
    if (key) {
      const values = {};
      for (const k of names) if (f.get(k)) values[k] = f.get(k);
      keep(key, values);
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
