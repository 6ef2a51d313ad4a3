// The Models page (stored versions, aliases, model cards, int8 agreement, refusals; compare beside promote) and the
// Reports page (the report jobs, each finished one opened by its signed link).

import {api, el, enc, page, say, statusCell} from "./api.js";
import {knownLocations, tablesPicker} from "./pickers.js";
import {route} from "./router.js";

export const nav = [["#/models", "Models", 60], ["#/reports", "Reports", 61]];

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

// Each version against the occurrences people identified (batch/postprocessing/people.py): precision and recall per label.
function peopleTable(p) {
  const pct = x => x === null || x === undefined ? "-" : `${Math.round(100 * x)}%`;
  return el("div", {class: "scroll"}, el("h3", {}, `Agreement with people (${p.identifications} identified)`),
    el("table", {class: "people"},
      el("thead", {}, el("tr", {}, ["version", "label", "people", "model", "precision", "recall"].map(h => el("th", {}, h)))),
      el("tbody", {}, p.versions.flatMap(v => v.per_label.map((l, i) => el("tr", {},
        el("td", {}, i ? "" : `${v.model} (${pct(v.agreement)} agreed)`), el("td", {}, l.label), el("td", {}, l.people),
        el("td", {}, l.model), el("td", {}, pct(l.precision)), el("td", {}, pct(l.recall))))))));
}

function promotePanel(m, cat, where) {
  const aliasName = m.default_alias || "production";
  const served = () => (cat.aliases[alias.value] || {}).version;  // the alias typed, as the store has it
  const alias = el("input", {type: "text", value: aliasName, "aria-label": "alias"});
  const newest = cat.versions.slice().reverse();
  const current = (cat.aliases[aliasName] || {}).version;
  const candidate = (newest.find(v => v.version !== current) || {}).version;  // preselected: the newest other one
  const version = el("select", {"aria-label": "version to promote", class: "promote-version"},
    newest.map(v => el("option", {value: v.version, selected: v.version === candidate}, v.version)));
  // the tables both versions ran into: those holding two versions of this model; "" is the backfill's (on_promote)
  const holds = where.locations.filter(l => l.kind === "tables" && (l.models || []).filter(v => v.startsWith(m.name + ":")).length > 1);
  const tables = tablesPicker({...where, locations: holds}, {name: "tables", value: !cat.backfill && holds.length === 1 ? holds[0].path : "",
                              blank: cat.backfill ? `the backfill's (${cat.backfill.out})` : "pick the tables both versions ran into"});
  tables.classList.add("compare-tables");
  const tablesLabel = el("label", {}, "compare in ", tables);
  const chosenTables = () => tablesLabel.querySelector("[name=tables]").value;  // picked, or typed after "another…"
  const result = el("div", {class: "compare-result"}, el("p", {class: "help"}, "choose a version to compare with the one served"));
  async function compare() {
    result.replaceChildren(el("p", {class: "help"}, "comparing..."));
    const now = served();
    if (!now) { result.replaceChildren(el("p", {class: "help"}, `${m.name} has no alias ${alias.value}`)); return; }
    if (version.value === now) { result.replaceChildren(el("p", {class: "help"}, `${m.name}@${alias.value} already serves ${now}`)); return; }
    const q = new URLSearchParams({a: now, b: version.value});
    if (chosenTables()) q.set("tables", chosenTables());
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
      el("label", {}, "alias ", alias), el("label", {}, "version ", version), detector ? tablesLabel : "",
      el("p", {}, detector ? el("button", {type: "button", class: "compare-button", on: {click: compare}}, "Compare") : "", " ",
        el("button", {type: "button", class: "promote-button", on: {click: () => moveAlias(m.name, "promote", alias.value, version.value)}}, "Promote"), " ",
        el("button", {type: "button", class: "danger", on: {click: () => moveAlias(m.name, "rollback", alias.value)}}, "Roll back")),
      backfill ? el("p", {class: "help"}, backfill) : ""),
    result);
}

async function modelsPage(current = () => true) {
  const [data, where] = await Promise.all([api("GET", "/v1/models"), knownLocations()]);
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
      promotePanel(m, cat, where), el("h3", {}, "Versions"), versionsTable(m, cat), ...refusals(m, cat));
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

export const pages = {models: modelsPage, reports: reportsPage};
