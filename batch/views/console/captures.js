// The Captures page: captures newest first under filters (camera, label, species, score range, dates, empty /
// non-empty / failed) in the tables picked (state.js, as on every page), paged by the service; and one capture large,
// with every box (dropped ones dashed), its classifications, snips, model version and filter set; a clip as its poster
// frame and the strip of its sampled frames with their boxes. The filters live in the URL (#/captures/<query>).

import {api, el, enc, page} from "./api.js";
import {boxText, clipBadge, clipStrip, decidedBy, framed, fromSource, pager, picture, picturesTablesField, picturesWhere,
        posterBoxes, when} from "./cameras.js";
import {chooseTables, chosenTables, tablesQuery} from "./state.js";

export const nav = [["#/captures", "Captures", 20]];

const CAPTURES_PER_PAGE = 48;
const FILTERS = ["camera", "label", "species", "min_score", "max_score", "since", "until", "state", "model"];

function choice(id, label, values, current, blank = "any") {
  return el("div", {class: "filter"}, el("label", {for: id}, label), el("select", {id, name: id},
    el("option", {value: ""}, blank), values.map(v => el("option", {value: v, selected: v === current}, v))));
}

function filterForm(params, where, sources, facets) {
  const input = (id, label, attrs) => el("div", {class: "filter"}, el("label", {for: id}, label),
    el("input", {id, name: id, value: params.get(id) || "", ...attrs}));
  const form = el("form", {class: "filters", id: "capture-filters"},
    el("div", {class: "filter"}, el("label", {for: "tables"}, "tables"), picturesTablesField(where, sources)),
    choice("camera", "camera", facets.cameras, params.get("camera")),
    choice("label", "label", facets.labels, params.get("label")),
    facets.species.length ? choice("species", "species", facets.species, params.get("species")) : "",
    input("min_score", "score from", {type: "number", min: 0, max: 1, step: "0.05"}),
    input("max_score", "score to", {type: "number", min: 0, max: 1, step: "0.05"}),
    input("since", "from", {type: "date"}), input("until", "until", {type: "date"}),
    choice("state", "state", ["nonempty", "empty", "failed"], params.get("state")),
    facets.models.length > 1 ? choice("model", "model", facets.models, params.get("model"), facets.model) : "",
    el("div", {class: "filter actions"}, el("button", {type: "submit", id: "apply-filters"}, "Show"),
      el("a", {href: "#/captures", class: "clear"}, "clear")));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const name of FILTERS) {
      const field = form.elements[name];
      if (field && field.value) q.set(name, field.value);
    }
    chooseTables(new FormData(form).get("tables") || "");
    location.hash = "#/captures/" + enc(q.toString());
  });
  return form;
}

function apiQuery(params) {
  const q = tablesQuery({limit: CAPTURES_PER_PAGE});
  for (const name of [...FILTERS, "offset"]) if (params.get(name)) q.set(name, params.get(name));
  // A date picked is a whole day: from its start, until the end of the "until" day.
  if (q.get("since")) q.set("since", q.get("since") + "T00:00:00");
  if (q.get("until")) {
    const end = new Date(q.get("until") + "T00:00:00Z");
    end.setUTCDate(end.getUTCDate() + 1);
    q.set("until", end.toISOString().slice(0, 19));
  }
  return q;
}

function captureCard(c) {
  const open = "#/capture/" + enc(new URLSearchParams({uri: c.uri}).toString());
  const text = c.status === "failed" ? `failed: ${c.error_reason || "unreadable"}`
    : c.detections.length ? c.detections.map(boxText).join(", ") : "nothing detected";
  return el("a", {class: "capture card", href: open, "data-uri": c.uri},
    c.status === "failed" ? framed(null, c.rel_path || c.uri, [], "", `no picture: the file could not be read (${c.error_reason || "failed"})`)
      : framed(c.thumb_url, c.rel_path || c.uri, posterBoxes(c, c.detections)),
    el("div", {class: "tile-time"}, `${c.camera} · ${when(c.capture_time)} `, clipBadge(c)),
    el("div", {class: "capture-text"}, text));
}

async function capturesPage(current, arg) {
  const params = new URLSearchParams(arg || "");
  if (params.has("source")) { await fromSource(params, "captures"); return false; }
  const {sources, where} = await picturesWhere();
  if (!sources.length && !chosenTables()) {
    if (!current()) return false;
    page.replaceChildren(el("h1", {}, "Captures"), el("p", {class: "empty-state"},
      "No pictures on this service yet (see the Cameras page)."));
    return false;
  }
  const offset = Number(params.get("offset") || 0);
  const none = {cameras: [], labels: [], species: [], models: [], model: null};
  const [facets, data] = await Promise.all([api("GET", "/v1/pictures/facets?" + tablesQuery({model: params.get("model")})).catch(() => none),
                                            api("GET", "/v1/pictures/captures?" + apiQuery(params)).catch(e => ({error: e}))]);
  if (!current()) return false;
  const shown = data.tables || chosenTables() || "these tables";
  const go = o => { params.set("offset", o); location.hash = "#/captures/" + enc(params.toString()); };
  let body;
  if (data.error) body = el("p", {class: "empty-state"}, data.error.message);
  else if (!data.captures.length) {
    const unknown = params.get("camera") && !facets.cameras.includes(params.get("camera"));
    body = el("p", {class: "empty-state"}, unknown ? `No camera ${params.get("camera")} in ${shown}.`
      : facets.cameras.length ? "No captures match these filters." : `No captures in ${shown} yet: its tables are empty.`);
  } else {
    body = [el("p", {class: "help", id: "captures-count"}, `${data.total} capture(s), ${data.model.name}:${data.model.version}, newest first`),
            el("div", {class: "captures", id: "captures"}, data.captures.map(captureCard)),
            pager(data.total, offset, CAPTURES_PER_PAGE, go)];
  }
  page.replaceChildren(el("h1", {}, "Captures"), filterForm(params, where, sources, facets), ...[body].flat().filter(Boolean));
  return false;
}

function classificationRows(d) {
  return (d.classifications || []).map(c => el("div", {class: "help"},
    `${c.classifier}: ${c.label} ${c.score.toFixed(2)}` + (c.rank ? ` (${c.rank})` : "") + decidedBy(c) +
    (c.pre_smoothing_description ? `; before smoothing: ${c.pre_smoothing_description}` : "") +
    (c.top.length ? `; top ${c.top.map(t => `${t.label} ${t.score.toFixed(2)}`).join(", ")}` : "")));
}

async function capturePage(current, arg) {
  const params = new URLSearchParams(arg || "");
  if (params.has("source")) { await fromSource(params, "capture"); return false; }
  const c = await api("GET", "/v1/pictures/capture?" + tablesQuery(Object.fromEntries(params)));
  if (!current()) return false;
  const clip = c.kind === "video";
  const rows = c.detections.map(d => el("tr", {class: d.kept ? "" : "dropped"},
    el("td", {}, d.detection_index), clip ? el("td", {}, d.frame_number ?? "-") : "", el("td", {}, d.label), el("td", {}, d.score.toFixed(3)), el("td", {}, d.kept ? "kept" : "dropped"),
    el("td", {class: "wrap"}, d.flags.join(", ")), el("td", {class: "wrap"}, d.species || "", classificationRows(d))));
  const specs = c.filter_set.specs.map(s => el("li", {}, JSON.stringify(s)));
  const back = "#/captures/" + enc(new URLSearchParams({camera: c.camera}).toString());
  page.replaceChildren(
    el("h1", {}, el("a", {href: back}, c.camera), ` · ${when(c.capture_time)}`),
    el("div", {class: "capture-view"},
      framed(c.status === "failed" ? null : c.image_url, c.rel_path || c.uri, posterBoxes(c, c.detections), "large",
             `no picture: the file could not be read (${c.error_reason || "failed"})`),
      el("div", {class: "capture-side"},
        el("p", {}, `${c.status}` + (c.error ? `: ${c.error}` : "") + (c.width ? ` · ${c.width}×${c.height}` : "")),
        el("p", {class: "wrap help"}, c.uri),
        el("p", {}, `model ${c.model.name}:${c.model.version}`, c.model.sha256 ? el("span", {class: "help"}, ` sha256 ${c.model.sha256.slice(0, 12)}`) : ""),
        el("p", {}, `filter set ${c.filter_set.hash}`),
        specs.length ? el("ul", {class: "filter-specs"}, specs) : el("p", {class: "help"}, "no post-processing filters"),
        c.snips.length ? el("div", {class: "snips"}, c.snips.map(s => picture(s.url, `snip ${s.detection_index}`, "snip"))) : "")),
    ...(clip ? [el("h2", {}, `Sampled frames with a detection (${c.frames.length})`), clipStrip(c)] : []),
    el("div", {class: "scroll"}, el("table", {id: "capture-boxes"},
      el("thead", {}, el("tr", {}, ["#", ...(clip ? ["frame"] : []), "label", "score", "", "filters fired", "species"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", {colspan: clip ? 7 : 6}, "no detections"))))));
  return false;
}

export const pages = {captures: capturesPage, capture: capturePage};
