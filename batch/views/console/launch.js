// The Start a job page: any job kind (reprocess, report, export, ...) from a form generated from the options the
// jobs API accepts (GET /v1/job-kinds), its locations picked from the archives and tables under the service's roots
// (GET /v1/locations), a model from the served ones. A kind with a dry run (reprocess) runs it first and shows what
// it would do; then "Confirm and run". POST /v1/jobs validates everything again.
"use strict";

function datalist(id, values) {
  return el("datalist", {id}, [...new Set(values)].map(v => el("option", {value: v})));
}

function pathChoices(name, kind, where) {
  const of = k => where.locations.filter(l => l.kind === k).map(l => l.path);
  if (name === "archive") return of("archive");
  if (name === "tables") return of("tables");
  const stamp = new Date().toISOString().slice(0, 10);
  if (kind === "reprocess") return [...of("tables"), ...where.roots.map(r => `${r}/tables-${stamp}`)];
  return [...of("tables").map(t => `${t}-${kind}-${stamp}`), ...where.roots.map(r => `${r}/${kind}-${stamp}`)];
}

function optionValue(input, schema) {
  const def = schema.default;
  const kind = input.dataset.kind;
  if (kind === "boolean") return input.checked === (def === true) ? undefined : input.checked;
  if (input.value === "") return undefined;
  let v = input.value;
  if (kind === "number" || kind === "integer") v = Number(v);
  else if (kind === "array") v = v.split(",").map(x => x.trim()).filter(Boolean);
  return JSON.stringify(v) === JSON.stringify(def) ? undefined : v;
}

async function startPage(current, arg) {
  const [{kinds}, where, models] = await Promise.all([api("GET", "/v1/job-kinds"), api("GET", "/v1/locations"),
                                                       api("GET", "/v1/models").catch(() => ({models: []}))]);
  const chosen = kinds.find(k => k.name === (arg || "reprocess")) || kinds[0];
  const modelNames = models.models.flatMap(m => [m.name, ...Object.keys(m.aliases || {}).map(a => `${m.name}@${a}`)]);
  const props = chosen.options_schema.properties || {};
  const defs = chosen.options_schema.$defs || {};
  const lists = [datalist("models-list", modelNames)];
  const field = name => {
    const parts = fieldFor(name, props[name], defs, chosen.required.includes(name));
    const input = parts[1];
    if (chosen.paths.includes(name)) {
      lists.push(datalist(`${name}-list`, pathChoices(name, chosen.name, where)));
      input.setAttribute("list", `${name}-list`);
      input.placeholder = "pick one, or a new folder under " + (where.roots[0] || "an allowed root");
      parts[2].textContent = (parts[2].textContent ? parts[2].textContent + " " : "") + "(under " + where.roots.join(", ") + ")";
    } else if (name === "model") {
      input.setAttribute("list", "models-list");
    }
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

  function options() {
    const o = {};
    for (const input of [...form.querySelectorAll("[id^=cfg-]"), ...extra.querySelectorAll("[id^=cfg-]")]) {
      const v = optionValue(input, props[input.name]);
      if (v !== undefined) o[input.name] = v;
    }
    return o;
  }
  const body = extra => ({kind: chosen.name, options: {...options(), ...extra}, ...(name.value ? {name: name.value} : {})});
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
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, "Start a job"), ...lists, form,
    more.length ? el("details", {}, el("summary", {}, `more options (${more.length})`), extra) : "",
    el("p", {}, chosen.preview ? previewButton : "", " ", run), result);
  return false;
}

pages.start = startPage;
