// Pick, don't type: a select of what the service knows (the tables and archives under the roots jobs may use, GET
// /v1/locations; the model versions each tables holds; the served models), and "another…" only where the service
// cannot know every value (a path deeper than its listing, a folder not made yet). What is picked or typed is
// checked again by the service (paths confined to the roots, names validated at the door).

import {api, el} from "./api.js";
import {field} from "./forms.js";

// The "another…" option's value: printable (a NUL is invalid in HTML, and tools then read the page as binary), and
// no path or model version (those start with "/", "s3://" or a name).
const OTHER = "?another";
const NOWHERE = {roots: [], locations: [], truncated: false};

// Fetched for each form drawn: a job may have written new tables since the last one.
export function knownLocations() { return api("GET", "/v1/locations").catch(() => NOWHERE); }

export function pathsOf(where, kind) { return where.locations.filter(l => l.kind === kind).map(l => l.path); }

// The model versions (NAME:VERSION) the tables at `path` hold, as listed; [] when the service has not listed them.
export function modelsOf(where, path) {
  return (where.locations.find(l => l.path === path && l.kind === "tables") || {}).models || [];
}

// A select of `choices` ([value, label] pairs), with `blank` ("" and what it means) first when given and, when
// `other` (the typed field's placeholder) is given, "another…", which turns the select into a text field. The element
// answers formJson as any field does; `select.refill(choices)` replaces the choices (e.g. when the tables change).
export function picker({id, name, choices = [], blank = null, other = null, value = "", required = false, onPick = null}) {
  const typed = initial => {
    const input = field(el("input", {id, name, type: "text", required, placeholder: other, "aria-label": name, value: initial}));
    if (onPick) input.addEventListener("change", () => onPick(input.value));
    return input;
  };
  if (value && other && !choices.some(([v]) => v === value)) return typed(value);  // typed before, kept typed
  const select = field(el("select", {id, name, required, "aria-label": name}));
  select.refill = list => {
    const keep = select.value || value;
    select.replaceChildren(...(blank === null ? [] : [el("option", {value: ""}, blank)]),
      ...list.map(([v, label]) => el("option", {value: v}, label ?? v)),
      ...(other ? [el("option", {value: OTHER}, "another… (type it)")] : []));
    if ([...select.options].some(o => o.value === keep && keep !== OTHER)) select.value = keep;
  };
  select.refill(choices);
  select.addEventListener("change", () => {
    if (select.value !== OTHER) { if (onPick) onPick(select.value); return; }
    const input = typed("");
    select.replaceWith(input);
    input.focus();
  });
  return select;
}

// The tables: those under the roots, each with the model versions it holds.
export function tablesPicker(where, options) {
  const choices = pathsOf(where, "tables").map(p => [p, `${p} (${modelsOf(where, p).join(", ") || "no model yet"})`]);
  return picker({other: `tables under ${where.roots.join(", ") || "an allowed root"}`, ...options, choices});
}

// A model version of the tables a form names; "" is the one they hold (the service asks for one when they hold
// several). Refilled when the tables change.
export function tableModelPicker(where, tables, options) {
  const choices = p => modelsOf(where, p).map(m => [m, m]);
  const select = picker({blank: "the tables' own (when they hold one)", other: "NAME:VERSION", ...options,
                         choices: choices(tables)});
  return [select, p => select.refill && select.refill(choices(p))];
}

// The models the service serves, by name, alias and loaded version (GET /v1/models).
export async function servedModels() {
  const {models} = await api("GET", "/v1/models").catch(() => ({models: []}));
  return [...new Set(models.flatMap(m => [m.name, ...Object.keys(m.aliases || {}).map(a => `${m.name}@${a}`),
                                          ...(m.versions || []).map(v => `${m.name}:${v.version}`)]))];
}
