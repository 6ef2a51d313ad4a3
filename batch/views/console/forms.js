// Forms from a JSON Schema (the job kinds' options, a filter's config) and the one form-to-JSON every form uses:
// each field carries its kind (data-kind) and, when the schema gives one, its default (data-default), so the JSON
// holds what a person set and leaves out what the service would assume anyway.

import {el} from "./api.js";

export function fieldFor(name, schema, defs, required) {
  let s = schema;
  if (s.$ref) s = defs[s.$ref.split("/").pop()];
  if (s.anyOf) s = s.anyOf.find(x => x.type !== "null") || s.anyOf[0];
  const id = "cfg-" + name;
  const def = schema.default;
  let input;
  if (s.enum) {
    input = el("select", {id, name}, s.enum.map(v => el("option", {value: v, selected: v === def}, v)));
  } else if (s.type === "boolean") {
    input = el("input", {id, name, type: "checkbox", checked: def === true});
  } else if (s.type === "number" || s.type === "integer") {
    input = el("input", {id, name, type: "number", step: s.type === "integer" ? "1" : "any", required,
                         min: s.minimum ?? s.exclusiveMinimum ?? null, max: s.maximum ?? s.exclusiveMaximum ?? null,
                         value: def ?? ""});
  } else if (s.type === "array") {
    input = el("input", {id, name, type: "text", required, placeholder: "comma-separated",
                         value: Array.isArray(def) ? def.join(",") : ""});
  } else if (s.type === "object") {  // a nested config (e.g. species_ensemble's smoothing_options): as JSON
    input = el("input", {id, name, type: "text", required, placeholder: "JSON object",
                         value: def !== undefined && def !== null ? JSON.stringify(def) : ""});
  } else {
    input = el("input", {id, name, type: "text", required, value: def ?? ""});
  }
  input.dataset.kind = s.type || (s.enum ? "enum" : "string");
  if (def !== undefined && def !== null) input.dataset.default = JSON.stringify(def);
  return [el("label", {for: id}, name + (required ? " *" : "")), input,
          el("div", {class: "help"}, schema.description || s.description || "")];
}

// A field of a form built by hand (not from a schema), read by formJson like the generated ones.
export function field(input, kind = "string") {
  input.dataset.kind = kind;
  return input;
}

// The form's fields as the JSON the API takes: numbers as numbers, lists split on commas, a box unticked left out
// unless the default ticks it; empty fields, values equal to their default and disabled fields left out.
export function formJson(...forms) {
  const out = {};
  for (const form of forms) {
    for (const input of form.querySelectorAll("[data-kind]")) {
      if (input.disabled) continue;
      const v = fieldValue(input);
      if (v !== undefined && JSON.stringify(v) !== input.dataset.default) out[input.name] = v;
    }
  }
  return out;
}

function fieldValue(input) {
  const kind = input.dataset.kind;
  if (kind === "boolean") return input.checked || input.dataset.default === "true" ? input.checked : undefined;
  if (input.value === "") return undefined;
  if (kind === "number" || kind === "integer") return Number(input.value);
  if (kind === "array") return input.value.split(",").map(v => v.trim()).filter(Boolean);
  if (kind === "object") {
    try { return JSON.parse(input.value); } catch { return input.value; }  // not JSON: the service names the field
  }
  return input.value;
}

// Mark the fields a refused request named: `fields` are the paths the service's one formatter gives
// (ground/problems.py); `under` picks those inside one option (`config.` for a filter's own config form).
export function markInvalid(form, fields, under = "") {
  const named = new Set((fields || []).filter(f => f.startsWith(under)).map(f => f.slice(under.length).split(".")[0]));
  for (const input of form.querySelectorAll("[data-kind]")) {
    if (named.has(input.name)) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}
