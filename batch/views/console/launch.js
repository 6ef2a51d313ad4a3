// The Start a job page: any job kind (reprocess, report, export, ...) from a form generated from the options the
// jobs API accepts (GET /v1/job-kinds); its archive and tables picked from those under the service's roots, a
// model from the served ones or from the versions the picked tables hold (GET /v1/locations, pickers.js). A kind
// with a dry run (reprocess) runs it first and shows what it would do; then "Confirm and run". POST /v1/jobs
// validates everything again. A kind whose options depend on one of them (export's format: `variants`) shows the
// chosen variant's options only; the others are hidden and disabled, so they are neither seen nor sent.

import {api, el, enc, page, say, statusCell} from "./api.js";
import {fieldFor, formJson, markInvalid} from "./forms.js";
import {knownLocations, pathsOf, picker, servedModels, tableModelPicker, tablesPicker} from "./pickers.js";
import {chosenTables} from "./state.js";

export const nav = [["#/start", "Start a job", 40, "operator"]];

// Where a job writes: a new folder (the service cannot know its name), suggested beside what is there.
function outChoices(kind, where) {
  const stamp = new Date().toISOString().slice(0, 10);
  if (kind === "reprocess") return [...pathsOf(where, "tables"), ...where.roots.map(r => `${r}/tables-${stamp}`)];
  return [...pathsOf(where, "tables").map(t => `${t}-${kind}-${stamp}`), ...where.roots.map(r => `${r}/${kind}-${stamp}`)];
}

async function startPage(current, arg) {
  const [{kinds}, where, served] = await Promise.all([api("GET", "/v1/job-kinds"), knownLocations(), servedModels()]);
  const chosen = kinds.find(k => k.name === (arg || "reprocess")) || kinds[0];
  const props = chosen.options_schema.properties || {};
  const defs = chosen.options_schema.$defs || {};
  const lists = [];
  const roots = where.roots.join(", ") || "an allowed root";
  // The tables' own model versions for `model` and `compare` (report): refilled when the tables change.
  const firstTables = chosenTables() || pathsOf(where, "tables")[0] || "";
  const versions = Object.fromEntries(["model", "compare"].filter(n => n in props && "tables" in props).map(n =>
    [n, tableModelPicker(where, firstTables, {id: "cfg-" + n, name: n, required: chosen.required.includes(n),
                                                ...(n === "compare" ? {blank: "none (no comparison)"} : {})})]));
  const pickers = {
    archive: () => picker({id: "cfg-archive", name: "archive", required: true, other: `a folder under ${roots}`,
                           choices: pathsOf(where, "archive").map(p => [p, `${p} (${where.locations.find(l => l.path === p).images}+ pictures)`])}),
    tables: () => tablesPicker(where, {id: "cfg-tables", name: "tables", required: true, value: firstTables,
                                       onPick: p => Object.values(versions).forEach(([, refill]) => refill(p))}),
    model: () => versions.model ? versions.model[0] : picker({id: "cfg-model", name: "model", required: chosen.required.includes("model"),
                                                              other: "NAME, NAME@ALIAS or NAME:VERSION", choices: served.map(m => [m, m])}),
    compare: () => versions.compare && versions.compare[0],
  };
  const field = name => {
    const parts = fieldFor(name, props[name], defs, chosen.required.includes(name));
    const pick = pickers[name] && pickers[name]();
    if (pick) parts[1] = pick;
    else if (chosen.paths.includes(name)) {  // a new place to write: typed, with suggestions
      lists.push(el("datalist", {id: `${name}-list`}, [...new Set(outChoices(chosen.name, where))].map(v => el("option", {value: v}))));
      parts[1].setAttribute("list", `${name}-list`);
      parts[1].placeholder = (name === "out" ? "a new folder under " : "a path under ") + (where.roots[0] || "an allowed root");
    }
    if (chosen.paths.includes(name)) parts[2].textContent = (parts[2].textContent ? parts[2].textContent + " " : "") + `(under ${roots})`;
    return parts;
  };
  // Options of a shape a one-line input cannot hold (filter lists, route maps) stay with the CLI and the API.
  const simple = Object.keys(props).filter(n => {
    const s = props[n].anyOf ? props[n].anyOf.find(x => x.type !== "null") || {} : props[n];
    return !(s.type === "object" || s.$ref && !(defs[s.$ref.split("/").pop()] || {}).enum ||
             (s.type === "array" && s.items && (s.items.type === "object" || s.items.$ref)));
  }).filter(n => n !== "dry_run");
  // Shown at the top (the kind's main options, from the command registry); the rest under "more options".
  const main = simple.filter(n => chosen.main.includes(n) || chosen.required.includes(n));
  const more = simple.filter(n => !main.includes(n));
  const kindSelect = el("select", {id: "job-kind"}, kinds.map(k => el("option", {value: k.name, selected: k === chosen}, k.name)));
  kindSelect.addEventListener("change", () => { location.hash = "#/start/" + enc(kindSelect.value); });
  const name = el("input", {id: "job-name", type: "text", maxlength: 100, placeholder: "e.g. site A, spring 2026"});
  const form = el("form", {class: "grid", id: "job-form"}, el("label", {for: "job-kind"}, "kind"), kindSelect,
    el("div", {class: "help"}, chosen.preview ? "runs a dry run first, then asks to confirm" : ""),
    main.flatMap(field), el("label", {for: "job-name"}, "name"), name, el("div", {class: "help"}, "shown in the job lists"));
  const extra = el("form", {class: "grid", id: "job-more"}, more.flatMap(field));
  const result = el("div", {id: "start-result"});
  const previewButton = el("button", {type: "button", id: "job-preview"}, "Preview (dry run)");
  const run = el("button", {type: "button", id: "job-run", disabled: chosen.preview}, chosen.preview ? "Confirm and run" : "Run");

  const body = also => ({kind: chosen.name, options: {...formJson(form, extra), ...also}, ...(name.value ? {name: name.value} : {})});
  async function waitEnded(id) {
    for (;;) {
      const job = await api("GET", "/v1/jobs/" + enc(id));
      if (!["pending", "running"].includes(job.status) || !current()) return job;
      await new Promise(r => setTimeout(r, 1000));
    }
  }
  async function preview() {
    say("");
    run.disabled = true;
    const fields = form.querySelectorAll("[required]");
    if ([...fields].some(f => !f.reportValidity())) return;
    try {
      const job = await api("POST", "/v1/jobs", body({dry_run: true}));
      result.replaceChildren(el("p", {}, "dry run ", el("a", {href: "#/job/" + enc(job.id)}, job.id), " running..."));
      const ended = await waitEnded(job.id);
      const logs = await api("GET", "/v1/jobs/" + enc(job.id) + "/logs?tail=25");
      if (!current()) return;
      result.replaceChildren(el("div", {class: "card", id: "preview-summary"},
        el("div", {}, "dry run ", el("a", {href: "#/job/" + enc(job.id)}, job.id), " ", statusCell(ended.status)),
        ended.message ? el("div", {}, ended.message) : "", el("pre", {}, logs.lines.join("\n"))));
      run.disabled = ended.status !== "succeeded";
    } catch (e) { say(e.message); markInvalid(form, e.fields); markInvalid(extra, e.fields); }
  }
  async function submit() {
    say("");
    if ([...form.querySelectorAll("[required]")].some(f => !f.reportValidity())) return;
    if (!confirm(`Run this ${chosen.name} job?`)) return;
    try {
      const job = await api("POST", "/v1/jobs", body({}));
      result.append(el("p", {}, "submitted: ", el("a", {id: "job-link", href: "#/job/" + enc(job.id)}, job.id)));
      run.disabled = true;
    } catch (e) { say(e.message); markInvalid(form, e.fields); markInvalid(extra, e.fields); }
  }
  previewButton.addEventListener("click", preview);
  run.addEventListener("click", submit);
  const moreSummary = el("summary", {}, `more options (${more.length})`);
  if (chosen.variants) {  // the options only some variants take: shown with the variant that takes them
    const lists = Object.values(chosen.variants.options);
    const varying = new Set(lists.flat().filter(n => !lists.every(l => l.includes(n))));
    const key = form.querySelector(`[name="${chosen.variants.key}"]`);
    const show = () => {
      const mine = chosen.variants.options[key.value] || [];
      for (const input of [...form.querySelectorAll("[data-kind]"), ...extra.querySelectorAll("[data-kind]")]) {
        if (!varying.has(input.name)) continue;
        const off = !mine.includes(input.name);
        input.disabled = off;
        for (const part of [input, input.previousElementSibling, input.nextElementSibling]) if (part) part.hidden = off;
      }
      moreSummary.textContent = `more options (${more.filter(n => !varying.has(n) || mine.includes(n)).length})`;
    };
    key.addEventListener("change", show);
    show();
  }
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, "Start a job"), ...lists, form,
    more.length ? el("details", {}, moreSummary, extra) : "",
    el("p", {}, chosen.preview ? previewButton : "", " ", run), result);
  return false;
}

export const pages = {start: startPage};
