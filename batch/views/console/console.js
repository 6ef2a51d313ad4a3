// The trapline console: one static page over the service's own API (/v1/jobs, /v1/filters,
// /v1/postprocess/preview, /v1/models, the admin routes). No build step, nothing loaded from elsewhere.
"use strict";

const page = document.getElementById("page");
const message = document.getElementById("message");
let timer = null;

function token() { return sessionStorage.getItem("trapline-token") || ""; }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") { for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn); }
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(method, path, body) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
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

function say(text) { message.textContent = text || ""; }

// The tables the service knows: its configured sources (GET /v1/pictures/sources) and the tables under the roots jobs
// may use (GET /v1/locations). A tables input picks from them (a datalist) instead of asking for a path typed blind.
let knownTables = null;
function tablesKnown() {
  knownTables = knownTables || Promise.all([
    api("GET", "/v1/pictures/sources").then(r => r.sources.map(x => x.tables)).catch(() => []),
    api("GET", "/v1/locations").then(r => r.locations.filter(l => l.kind === "tables").map(l => l.path)).catch(() => []),
  ]).then(([sources, under]) => [...new Set([...sources, ...under])]);
  return knownTables;
}

function pickTables(input) {
  const id = "known-tables";
  input.setAttribute("list", id);
  if (!document.getElementById(id)) document.body.append(el("datalist", {id}));
  tablesKnown().then(paths => document.getElementById(id).replaceChildren(...paths.map(p => el("option", {value: p}))));
  return input;
}

// A select of the known tables only (no path typed): `chosen` first if the service still knows it; "" is the
// recorder's tables of the serve config (the routes' default).
async function selectTables(attrs, chosen) {
  const paths = await tablesKnown();
  return el("select", attrs, el("option", {value: ""}, "the recorder's tables (default)"),
            paths.map(p => el("option", {value: p, selected: p === chosen}, p)));
}

// Mark the inputs of the options a refused request named: `fields` are the paths the service's one formatter gives
// (trapline/problems.py); `under` picks those inside one option (`config.` for a filter's own config form).
function markInvalid(form, fields, under = "") {
  const named = new Set((fields || []).filter(f => f.startsWith(under)).map(f => f.slice(under.length).split(".")[0]));
  for (const input of form.querySelectorAll("[id^=cfg-]")) {
    if (named.has(input.name)) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

function bar(p) {
  if (!p || !p.images_total) return "";
  const pct = Math.min(100, Math.round(100 * p.images_done / p.images_total));
  const fill = el("span");
  fill.style.width = pct + "%";  // a property, not a style attribute: the page's CSP allows no inline styles
  return el("div", {class: "bar", title: `${pct}%`}, fill);
}

function progressText(p) {
  if (!p) return "";
  let t = `${p.images_done}/${p.images_total}`;
  if (p.images_per_s) t += `, ${p.images_per_s.toFixed(1)} images/s`;
  if (p.eta_s !== null && p.eta_s !== undefined) t += `, ETA ${Math.round(p.eta_s)} s`;
  return t;
}

function statusCell(status) { return el("span", {class: "status-" + status}, status); }

// -- jobs ------------------------------------------------------------------------------------------
async function jobsPage(current = () => true) {
  const data = await api("GET", "/v1/jobs?limit=50");
  const when = iso => iso ? iso.slice(0, 16).replace("T", " ") : "-";  // to the minute; the job page has seconds
  const rows = data.jobs.map(j => el("tr", {},
    el("td", {}, el("a", {href: "#/job/" + encodeURIComponent(j.id)}, j.id)), el("td", {class: "name"}, j.name || ""),
    el("td", {}, j.kind), el("td", {}, statusCell(j.status)), el("td", {}, j.model || "-"),
    el("td", {}, when(j.submitted_at)), el("td", {}, when(j.ended_at)),
    el("td", {class: "progress"}, j.status === "running" ? bar(j.progress) : "",
       progressText(j.status === "running" ? j.progress : j.progress && {images_done: j.progress.images_done, images_total: j.progress.images_total}))));
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, `Jobs (${data.total})`),
    el("div", {class: "scroll"}, el("table", {id: "jobs"},
      el("thead", {}, el("tr", {}, ["id", "name", "kind", "status", "model", "submitted", "ended", "images"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", {colspan: 8}, "no jobs yet"))))));
  return data.jobs.some(j => j.status === "running" || j.status === "pending");
}

async function jobPage(id, current = () => true) {
  const [job, logs] = await Promise.all([api("GET", "/v1/jobs/" + encodeURIComponent(id)),
                                         api("GET", "/v1/jobs/" + encodeURIComponent(id) + "/logs?tail=40")]);
  const p = job.progress;
  const stages = p ? Object.entries(p.stages).map(([stage, counts]) => el("tr", {},
    el("th", {}, stage), el("td", {class: "wrap"}, Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")))) : [];
  const active = job.status === "running" || job.status === "pending";
  if (!current()) return false;

  page.replaceChildren(
    el("h1", {}, `${job.kind} job `, el("span", {id: "job-id"}, job.id), " ", el("span", {id: "job-status", class: "status-" + job.status}, job.status)),
    job.name ? el("p", {id: "job-name"}, job.name) : "",
    el("div", {class: "card"},
      el("div", {}, `submitted ${job.submitted_at || "-"}, ended ${job.ended_at || "-"}, by ${job.origin}`),
      job.message ? el("div", {}, job.message) : "",
      active ? el("button", {class: "danger", id: "stop", on: {click: () => stopJob(job.id)}}, "Stop") : "",
      (job.status === "failed" || job.status === "stopped") && job.options
        ? el("button", {id: "rerun", on: {click: () => rerunJob(job)}}, job.resumes ? "Resume" : "Run again") : ""),
    el("h2", {}, "Progress"),
    p ? el("div", {class: "card"}, bar(p), el("div", {}, progressText(p), ` (run ${p.run_id}, ${p.run_status})`),
          el("div", {class: "scroll"}, el("table", {id: "stages"}, el("tbody", {}, stages))))
      : el("p", {}, "no run manifest yet"),
    el("h2", {}, "Options"), el("pre", {}, JSON.stringify(job.options, null, 2)),
    el("h2", {}, "Log (tail)"), el("pre", {id: "log"}, logs.lines.join("\n")));
  return active;
}

// A job whose command resumes (the service says so: `job.resumes`) picks up where the stopped or failed run ended.
async function rerunJob(job) {
  if (!confirm(`${job.resumes ? "Resume" : "Run again"} this ${job.kind} job with the same options?`)) return;
  try {
    const again = await api("POST", "/v1/jobs", {kind: job.kind, options: job.options, ...(job.name ? {name: job.name} : {})});
    location.hash = "#/job/" + encodeURIComponent(again.id);
  } catch (e) { say(e.message); }
}

async function stopJob(id) {
  if (!confirm(`Stop job ${id}? A reprocess ends at its next part.`)) return;
  try { const r = await api("POST", "/v1/jobs/" + encodeURIComponent(id) + "/stop"); say(`stop requested (${r.stop})`); }
  catch (e) { say(e.message); }
  route();
}

// -- post-processing: a form from the filter's JSON Schema, a preview, then the job ----------------
function fieldFor(name, schema, defs, required) {
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
  } else {
    input = el("input", {id, name, type: "text", required, value: def ?? ""});
  }
  input.dataset.kind = s.type || (s.enum ? "enum" : "string");
  return [el("label", {for: id}, name + (required ? " *" : "")), input,
          el("div", {class: "help"}, schema.description || s.description || "")];
}

function readConfig(form) {
  const config = {};
  for (const input of form.querySelectorAll("[id^=cfg-]")) {
    const kind = input.dataset.kind;
    if (kind === "boolean") { config[input.name] = input.checked; continue; }
    if (input.value === "") continue;
    if (kind === "number" || kind === "integer") config[input.name] = Number(input.value);
    else if (kind === "array") config[input.name] = input.value.split(",").map(v => v.trim()).filter(Boolean);
    else config[input.name] = input.value;
  }
  return config;
}

async function postprocessPage(current = () => true) {
  const {filters} = await api("GET", "/v1/filters");
  const select = el("select", {id: "filter"}, filters.map(f => el("option", {value: f.name}, f.name)));
  const configForm = el("form", {class: "grid", id: "config-form"});
  const description = el("p", {id: "filter-description"});
  const result = el("div", {id: "preview-result"});
  const run = el("button", {id: "run", type: "button", disabled: true}, "Confirm and run");
  const scope = el("form", {class: "grid", id: "scope-form"},
    el("label", {for: "tables"}, "tables *"), pickTables(el("input", {id: "tables", type: "text", required: true, placeholder: "pick the tables, or a reprocess --out location"})),
    el("div", {class: "help"}, "the tables to re-filter (under the service's allowed roots)"),
    el("label", {for: "model"}, "model"), el("input", {id: "model", type: "text", placeholder: "NAME:VERSION (when several are stored)"}),
    el("div", {class: "help"}, ""),
    el("label", {for: "image"}, "preview image *"), el("input", {id: "image", type: "text", placeholder: "cam01/IMG_0001.jpg"}),
    el("div", {class: "help"}, "one stored image to try the filter on before the run"));
  function showFilter() {
    const f = filters.find(x => x.name === select.value);
    description.textContent = `${f.description} (${f.kind}${f.table_level ? ", table-level" : ""})`;
    const props = f.schema.properties || {};
    configForm.replaceChildren(...Object.entries(props).flatMap(([name, s]) =>
      fieldFor(name, s, f.schema.$defs || {}, f.required.includes(name))));
    run.disabled = true;
    result.replaceChildren();
  }
  function options() {
    const o = {tables: document.getElementById("tables").value, filter: select.value, config: readConfig(configForm)};
    const model = document.getElementById("model").value;
    if (model) o.model = model;
    return o;
  }
  async function preview() {
    say("");
    try {
      const r = await api("POST", "/v1/postprocess/preview", {...options(), image: document.getElementById("image").value});
      const species = c => (c.relabelled || []).map(x => `${x.classifier}: ${x.from} -> ${x.to}`).join(", ");
      const rows = r.changes.map(c => el("tr", {}, el("td", {}, c.detection_index), el("td", {}, c.label),
        el("td", {}, c.score.toFixed(3)), el("td", {class: c.change}, c.change), el("td", {}, c.flags.join(", ")),
        el("td", {}, species(c))));
      const relabelled = r.summary.relabelled ? `; ${r.summary.relabelled} relabelled` : "";
      result.replaceChildren(el("div", {class: "card"},
        el("div", {}, `kept ${r.summary.kept_before} -> ${r.summary.kept_after} of ${r.summary.detections_checked} detection(s); ${r.summary.flagged} flagged${relabelled}`),
        el("div", {class: "scroll"}, el("table", {}, el("thead", {}, el("tr", {}, ["#", "label", "score", "change", "flags", "species"].map(h => el("th", {}, h)))),
          el("tbody", {}, rows))), r.notes.map(n => el("div", {}, n))));
      run.disabled = false;
    } catch (e) { say(e.message); markInvalid(configForm, e.fields, "config."); run.disabled = true; }
  }
  async function submit() {
    if (!confirm(`Run ${select.value} over ${document.getElementById("tables").value}?`)) return;
    try {
      const job = await api("POST", "/v1/jobs", {kind: "postprocess", options: options()});
      result.append(el("p", {}, "submitted: ", el("a", {id: "job-link", href: "#/job/" + encodeURIComponent(job.id)}, job.id)));
      run.disabled = true;
    } catch (e) { say(e.message); markInvalid(configForm, e.fields, "config."); }
  }
  select.addEventListener("change", showFilter);
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, "Run post-processing"),
    el("form", {class: "grid"}, el("label", {for: "filter"}, "filter"), select, el("div", {class: "help"}, "")),
    description, scope, el("h2", {}, "Filter config"), configForm,
    el("p", {}, el("button", {id: "preview", type: "button", on: {click: preview}}, "Preview on this image"), " ", run),
    result);
  run.addEventListener("click", submit);
  showFilter();
  return false;
}

// -- models: stored versions, aliases, model cards, int8 agreement, refusals; compare beside promote --
const enc = encodeURIComponent;

function pct(x) { return x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%"; }

function agreementText(q) {
  const speed = q.parent_ms > 0 ? `; ${q.parent_ms.toFixed(1)} -> ${q.int8_ms.toFixed(1)} ms/image` : "";
  return `${q.verdict}: recall ${pct(q.total.recall)}, precision ${pct(q.total.precision)}, ` +
         `mAP@0.5 ${q.map50.toFixed(3)} against ${q.parent} on ${q.heldout_images} held-out image(s)${speed}`;
}

function agreementTable(q) {
  return el("div", {class: "scroll"}, el("table", {class: "agreement"},
    el("thead", {}, el("tr", {}, ["class", "boxes parent / int8", "matched", "recall", "precision", "AP@0.5"].map(h => el("th", {}, h)))),
    el("tbody", {}, [...q.classes, q.total].map(c => el("tr", {}, el("td", {}, c.label),
      el("td", {}, `${c.parent_boxes} / ${c.int8_boxes}`), el("td", {}, c.matched), el("td", {}, pct(c.recall)),
      el("td", {}, pct(c.precision)), el("td", {}, c.ap50 === null ? "-" : c.ap50.toFixed(3)))))));
}

function versionsTable(m, cat) {
  const loaded = new Map(m.versions.map(v => [v.version, v]));
  return el("div", {class: "scroll"}, el("table", {class: "versions"},
    el("thead", {}, el("tr", {}, ["version", "aliases", "loaded", "sha256", "description"].map(h => el("th", {}, h)))),
    el("tbody", {}, cat.versions.slice().reverse().flatMap(v => {
      const extra = [];
      if (v.quantization) extra.push(el("div", {class: "quantization"}, "int8 agreement: " + agreementText(v.quantization)),
                                    el("details", {}, el("summary", {}, "per class"), agreementTable(v.quantization)));
      if (v.card) extra.push(el("details", {class: "model-card"}, el("summary", {}, "model card"), el("pre", {}, v.card)));
      if (v.error) extra.push(el("div", {class: "dropped"}, `this version cannot be read: ${v.error}`));
      const live = loaded.get(v.version);
      return [el("tr", {"data-version": v.version}, el("td", {}, el("strong", {}, v.version)), el("td", {}, v.aliases.join(", ") || "-"),
                 el("td", {}, live ? `yes (${live.device || "cpu"})` : "no"), el("td", {}, (v.sha256 || "").slice(0, 12)),
                 el("td", {class: "wrap"}, v.description || "")),
              extra.length ? el("tr", {class: "detail"}, el("td", {colspan: 5, class: "wrap"}, extra)) : ""];
    }))));
}

function refusals(m, cat) {
  const items = cat.refused.map(r => el("li", {class: "refused"}, el("strong", {}, r.version), ` (int8 of ${r.parent}, ${r.refused_at}): `,
    el("span", {class: "dropped"}, r.reason), el("details", {}, el("summary", {}, "figures"), agreementTable(r))));
  const service = m.errors.map(e => el("li", {class: "refused"}, el("strong", {}, e.version), `: ${e.type}: ${e.message || ""}`));
  return [items.length ? el("div", {}, el("h3", {}, "Refused by the int8 gate (not published)"), el("ul", {}, items)) : "",
          service.length ? el("div", {}, el("h3", {}, "Refused by the service (not loaded)"), el("ul", {}, service)) : ""];
}

function comparisonView(c) {
  const rows = c.labels.map(l => el("tr", {}, el("td", {}, l.label), el("td", {}, l.matched), el("td", {}, l.only_a), el("td", {}, l.only_b)));
  const examples = c.examples.map(x => el("li", {}, `${x.uri}: `,
    x.only_a.map(b => el("span", {class: "dropped"}, `${c.a} only ${b.label} ${b.score.toFixed(2)} `)),
    x.only_b.map(b => el("span", {class: "restored"}, `${c.b} only ${b.label} ${b.score.toFixed(2)} `))));
  const sets = c.filters.a === c.filters.b ? "" :
    ` The filter sets differ (${c.filters.a} / ${c.filters.b}): some differences may be the filters', not the models'.`;
  return [el("div", {class: "compare-summary"}, `${c.images_both} image(s) in both; ${c.images_differ} differ. ` +
            `Boxes in both ${c.totals.matched}, only ${c.a} ${c.totals.only_a}, only ${c.b} ${c.totals.only_b}.` + sets),
          el("div", {class: "scroll"}, el("table", {class: "compare"},
            el("thead", {}, el("tr", {}, ["label", "in both", `only ${c.a}`, `only ${c.b}`].map(h => el("th", {}, h)))),
            el("tbody", {}, rows))),
          examples.length ? el("details", {}, el("summary", {}, "images that differ most"), el("ul", {}, examples)) : "",
          c.people ? peopleTable(c.people) : ""];
}

// Each version against the occurrences people identified (batch/refilter/people.py): precision and recall per label.
function peopleTable(p) {
  const pct = x => x === null || x === undefined ? "-" : `${Math.round(100 * x)}%`;
  return el("div", {class: "scroll"}, el("h3", {}, `Agreement with people (${p.identifications} identified)`),
    el("table", {class: "people"},
      el("thead", {}, el("tr", {}, ["version", "label", "people", "model", "precision", "recall"].map(h => el("th", {}, h)))),
      el("tbody", {}, p.versions.flatMap(v => v.per_label.map((l, i) => el("tr", {},
        el("td", {}, i ? "" : `${v.model} (${pct(v.agreement)} agreed)`), el("td", {}, l.label), el("td", {}, l.people),
        el("td", {}, l.model), el("td", {}, pct(l.precision)), el("td", {}, pct(l.recall))))))));
}

function promotePanel(m, cat) {
  const aliasName = m.default_alias || "production";
  const served = () => (cat.aliases[alias.value] || {}).version;  // the alias typed, as the store has it
  const alias = el("input", {type: "text", value: aliasName, "aria-label": "alias"});
  const newest = cat.versions.slice().reverse();
  const current = (cat.aliases[aliasName] || {}).version;
  const candidate = (newest.find(v => v.version !== current) || {}).version;  // preselected: the newest other one
  const version = el("select", {"aria-label": "version to promote", class: "promote-version"},
    newest.map(v => el("option", {value: v.version, selected: v.version === candidate}, v.version)));
  const tables = el("input", {type: "text", "aria-label": "tables", class: "compare-tables", value: cat.backfill ? cat.backfill.out : "",
                              placeholder: "tables both versions ran into"});
  const result = el("div", {class: "compare-result"}, el("p", {class: "help"}, "choose a version to compare with the one served"));
  async function compare() {
    result.replaceChildren(el("p", {class: "help"}, "comparing..."));
    const now = served();
    if (!now) { result.replaceChildren(el("p", {class: "help"}, `${m.name} has no alias ${alias.value}`)); return; }
    if (version.value === now) { result.replaceChildren(el("p", {class: "help"}, `${m.name}@${alias.value} already serves ${now}`)); return; }
    const q = new URLSearchParams({a: now, b: version.value});
    if (tables.value) q.set("tables", tables.value);
    try {
      const c = await api("GET", `/v1/models/${enc(m.name)}/compare?${q}`);
      result.replaceChildren(el("h3", {}, `${c.a} (served) against ${c.b}`), ...comparisonView(c),
        el("p", {}, el("button", {type: "button", class: "full-report", on: {click: () => fullReport(c)}}, "Full report with pictures")));
    } catch (e) { result.replaceChildren(el("p", {class: "dropped"}, e.message)); }
  }
  async function fullReport(c) {
    const out = `${c.tables.replace(/\/+$/, "")}-report-${c.a.split(":").pop()}-vs-${c.b.split(":").pop()}`;
    try {
      const job = await api("POST", "/v1/jobs", {kind: "report", options: {tables: c.tables, out, model: c.a, compare: c.b}});
      result.append(el("p", {}, "report job: ", el("a", {href: "#/job/" + enc(job.id)}, job.id), " (opens from Reports when done)"));
    } catch (e) { say(e.message); }
  }
  const detector = m.kind === "detector";  // a classifier's versions have no detection tables to compare
  if (detector) version.addEventListener("change", compare);
  else result.replaceChildren(el("p", {class: "help"}, "Compare matches detection boxes: it is for detectors"));
  const backfill = cat.backfill ? `A promote of ${m.name}@${cat.backfill.alias} reprocesses ${cat.backfill.archive} into ${cat.backfill.out} once per version.` : "";
  return el("div", {class: "promote"},
    el("div", {class: "promote-form"}, el("h3", {}, "Promote or roll back"),
      el("label", {}, "alias ", alias), el("label", {}, "version ", version), detector ? el("label", {}, "compare in ", tables) : "",
      el("p", {}, detector ? el("button", {type: "button", class: "compare-button", on: {click: compare}}, "Compare") : "", " ",
        el("button", {type: "button", class: "promote-button", on: {click: () => moveAlias(m.name, "promote", alias.value, version.value)}}, "Promote"), " ",
        el("button", {type: "button", class: "danger", on: {click: () => moveAlias(m.name, "rollback", alias.value)}}, "Roll back")),
      backfill ? el("p", {class: "help"}, backfill) : ""),
    result);
}

async function modelsPage(current = () => true) {
  const data = await api("GET", "/v1/models");
  // One model's catalogue failing (a broken store entry) must not take the others' buttons with it.
  const catalogs = await Promise.allSettled(data.models.map(m => api("GET", `/v1/models/${enc(m.name)}/versions`)));
  const cards = data.models.map((m, i) => {
    if (catalogs[i].status === "rejected") {
      return el("div", {class: "card model", id: "model-" + m.name}, el("h2", {}, `${m.name} (${m.kind})`),
        el("p", {class: "dropped"}, `the store's versions could not be read: ${catalogs[i].reason.message}`));
    }
    const cat = catalogs[i].value;
    const aliases = Object.entries(cat.aliases).map(([a, r]) => `${a} -> ${r.version}` + (r.history.length ? ` (before: ${r.history.slice(-3).join(", ")})` : ""));
    return el("div", {class: "card model", id: "model-" + m.name}, el("h2", {}, `${m.name} (${m.kind})`),
      el("div", {}, "aliases: " + (aliases.join("; ") || "none")),
      el("div", {}, "serving: " + Object.entries(m.aliases || {}).map(([a, v]) => `${a} -> ${Array.isArray(v) ? v.join(" / ") + " (swapping)" : v}`).join(", ")),
      promotePanel(m, cat), el("h3", {}, "Versions"), versionsTable(m, cat), ...refusals(m, cat));
  });
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, "Models"), el("p", {}, `admin routes ${data.admin_routes}`), ...cards);
  return false;
}

async function moveAlias(model, action, alias, version) {
  const what = action === "promote" ? `${model}@${alias} -> ${version}` : `roll ${model}@${alias} back`;
  if (!confirm(`${what}? Every replica loads and warms it first.`)) return;
  const q = new URLSearchParams({alias});
  if (version) q.set("version", version);
  try { const r = await api("POST", `/v1/admin/models/${enc(model)}/${action}?${q}`); say(`${model}@${r.alias} -> ${r.version}`); }
  catch (e) { say(e.message); }
  route();
}

// -- reports: the report jobs, each finished one opened by its signed link --------------------------
async function reportsPage(current = () => true) {
  const data = await api("GET", "/v1/jobs?kind=report&limit=100");
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, "Review reports"), el("div", {class: "scroll"}, el("table", {id: "reports"},
    el("thead", {}, el("tr", {}, ["job", "status", "model", "compared with", "report"].map(h => el("th", {}, h)))),
    el("tbody", {}, data.jobs.length ? data.jobs.map(j => el("tr", {}, el("td", {}, el("a", {href: "#/job/" + enc(j.id)}, j.id)),
      el("td", {}, statusCell(j.status)), el("td", {}, j.model || "-"), el("td", {}, (j.options && j.options.compare) || "-"),
      el("td", {}, j.report_url ? el("a", {href: j.report_url, target: "_blank", rel: "noopener", class: "open-report"}, "open")
                                : (j.options ? j.options.out : "-"))))
      : el("tr", {}, el("td", {colspan: 5}, "no report jobs yet"))))));
  return data.jobs.some(j => j.status === "running" || j.status === "pending");
}

// -- routing ---------------------------------------------------------------------------------------
// One entry per page: (current, arg) => Promise<live?>. A page of its own file (loaded after this one, see
// index.html) adds itself here with `pages.NAME = fn` and a link in index.html's nav.
const pages = {jobs: jobsPage, job: (current, arg) => jobPage(arg, current), postprocess: postprocessPage,
               models: modelsPage, reports: reportsPage};
let shown = 0;  // the newest route() call: an older one still loading must not paint over it

async function route() {
  clearTimeout(timer);
  const call = ++shown;
  const hash = location.hash || "#/cameras";  // the pictures first (cameras.js); Jobs is one link away
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", hash.startsWith(a.getAttribute("href")));
  const [, name, arg] = hash.split("/");
  try {
    const live = await (pages[name] || jobsPage)(() => call === shown, decodeURIComponent(arg || ""));
    if (live && call === shown) timer = setTimeout(route, 2000);  // live progress while something runs
  } catch (e) {
    if (call === shown) page.replaceChildren(el("h1", {}, "trapline"), el("p", {}, e.message));
  }
}

document.getElementById("token-form").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem("trapline-token", document.getElementById("token").value);
  document.getElementById("token").value = "";
  route();
});
window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", route);  // after every page's script has added itself
