// The Run post-processing page: a filter picked from the registered ones (GET /v1/filters), its config form generated
// from the filter's JSON Schema, the tables and their model version picked from those the service knows, a preview
// on one stored image (POST /v1/postprocess/preview, nothing written), then the job (POST /v1/jobs). Opened from an
// occurrence's page (#/postprocess/OCCURRENCE_ID), the run is scoped to that occurrence's images and the preview
// starts on its first frame.

import {api, el, enc, page, say} from "./api.js";
import {field, fieldFor, formJson, markInvalid} from "./forms.js";
import {knownLocations, pathsOf, tableModelPicker, tablesPicker} from "./pickers.js";
import {chosenTables, tablesQuery} from "./state.js";

export const nav = [["#/postprocess", "Run post-processing", 50, "operator"]];

async function postprocessPage(current = () => true, occurrence = "") {
  const [{filters}, where] = await Promise.all([api("GET", "/v1/filters"), knownLocations()]);
  const occ = occurrence ? await api("GET", `/v1/occurrences/${enc(occurrence)}?` +
    tablesQuery()) : null;
  const select = el("select", {id: "filter"}, filters.map(f => el("option", {value: f.name}, f.name)));
  const configForm = el("form", {class: "grid", id: "config-form"});
  const description = el("p", {id: "filter-description"});
  const result = el("div", {id: "preview-result"});
  const run = el("button", {id: "run", type: "button", disabled: true}, "Confirm and run");
  const first = chosenTables() || pathsOf(where, "tables")[0] || "";
  const [model, tablesChanged] = tableModelPicker(where, first, {id: "model", name: "model"});
  const tables = tablesPicker(where, {id: "tables", name: "tables", value: first, required: true, onPick: tablesChanged});
  const scope = el("form", {class: "grid", id: "scope-form"},
    el("label", {for: "tables"}, "tables *"), tables,
    el("div", {class: "help"}, "the tables to re-filter, with the model versions each holds"),
    el("label", {for: "model"}, "model"), model,
    el("div", {class: "help"}, "the model version whose detections are filtered"),
    el("label", {for: "image"}, "preview image *"),
    field(el("input", {id: "image", name: "image", type: "text", placeholder: "cam01/IMG_0001.jpg",
                       value: occ ? occ.frames_shown[0].uri : ""})),
    el("div", {class: "help"}, "one stored image to try the filter on before the run (its path in the archive)"),
    ...(occ ? [el("label", {}, "occurrence"), el("div", {id: "scope-occurrence"}, occ.occurrence_id),
               el("div", {class: "help"}, `the run re-filters only this occurrence's ${occ.frames} frame(s)`)] : []));
  function showFilter() {
    const f = filters.find(x => x.name === select.value);
    description.textContent = `${f.description} (${f.kind}${f.table_level ? ", table-level" : ""})`;
    const props = f.schema.properties || {};
    configForm.replaceChildren(...Object.entries(props).flatMap(([name, s]) =>
      fieldFor(name, s, f.schema.$defs || {}, f.required.includes(name))));
    run.disabled = true;
    result.replaceChildren();
  }
  // The one form-to-JSON (forms.js) reads both forms: the scope's fields and the filter's config.
  function options() {
    const {image, ...chosen} = formJson(scope);
    const scoped = occ ? {occurrences: [occ.occurrence_id]} : {};
    return [{...chosen, ...scoped, filter: select.value, config: formJson(configForm)}, image];
  }
  async function preview() {
    say("");
    try {
      const [o, image] = options();
      const {occurrences, ...unscoped} = o;  // the preview is of one image: the occurrence scope is the run's
      const r = await api("POST", "/v1/postprocess/preview", {...unscoped, image});
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
    } catch (e) { say(e.message); markInvalid(scope, e.fields); markInvalid(configForm, e.fields, "config."); run.disabled = true; }
  }
  async function submit() {
    const [o] = options();
    if (!confirm(`Run ${o.filter} over ${o.tables}?`)) return;
    try {
      const job = await api("POST", "/v1/jobs", {kind: "postprocess", options: o});
      result.append(el("p", {}, "submitted: ", el("a", {id: "job-link", href: "#/job/" + enc(job.id)}, job.id)));
      run.disabled = true;
    } catch (e) { say(e.message); markInvalid(scope, e.fields); markInvalid(configForm, e.fields, "config."); }
  }
  select.addEventListener("change", showFilter);
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, occ ? `Run post-processing on occurrence ${occ.occurrence_id}` : "Run post-processing"),
    el("form", {class: "grid"}, el("label", {for: "filter"}, "filter"), select, el("div", {class: "help"}, "")),
    description, scope, el("h2", {}, "Filter config"), configForm,
    el("p", {}, el("button", {id: "preview", type: "button", on: {click: preview}}, "Preview on this image"), " ", run),
    result);
  run.addEventListener("click", submit);
  showFilter();
  return false;
}

export const pages = {postprocess: postprocessPage};
