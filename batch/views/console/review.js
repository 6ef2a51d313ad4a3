// The Review page: a model version's images nobody reviewed yet, each picture with its kept boxes, and the verbs that
// make the version's accuracy measurable, each one key or one click: confirm (c), reject (x), relabel (l, then type),
// mark the image empty (e), add a missed box (a, then drag on the picture and type its label); j/k move between
// boxes. Above them, the version's accuracy from people's decisions so far. Over /v1/review/* and
// /v1/models/{name}/{version}/accuracy (batch/views/review.py).

import {api, el, page, say} from "./api.js";
import {occDecision, orProblem, peopleForm, tablesField, whoField} from "./people.js";
import {knownLocations, tableModelPicker} from "./pickers.js";
import {chosenTables, kept} from "./state.js";

export const nav = [["#/review", "Review", 72]];

const KEYS = "c confirm · x reject · l relabel · e empty · a add a missed box · j/k next/previous box";

function filters() { return kept("review"); }

function shown(r) {
  return r.value === null ? `- (${r.k}/${r.n})` : `${r.value.toFixed(2)} (${r.low.toFixed(2)}-${r.high.toFixed(2)}, ${r.k}/${r.n})`;
}

function accuracyCard(a) {
  const d = a.detection, cov = a.coverage;
  return el("div", {class: "card", id: "accuracy"},
    el("div", {}, `${a.model}: reviewed ${shown(cov.reviewed_images)} images, ${shown(cov.reviewed_detections)} detections, ` +
                  `${cov.added_boxes} box(es) added (Wilson 95% intervals; k/n is the evidence)`),
    el("div", {}, `precision ${shown(d.precision)} · recall ${shown(d.recall)} · F1 ${d.f1 === null ? "-" : d.f1.toFixed(2)} · ` +
                  `label agreement ${shown(d.label_agreement)}`),
    a.per_label.length ? el("details", {}, el("summary", {}, "per label"), el("table", {class: "per-label"},
      el("thead", {}, el("tr", {}, ["label", "people", "model", "precision", "recall", "F1"].map(h => el("th", {}, h)))),
      el("tbody", {}, a.per_label.map(r => el("tr", {}, el("td", {}, r.label), el("td", {}, r.people), el("td", {}, r.model),
        el("td", {}, shown(r.precision)), el("td", {}, shown(r.recall)), el("td", {}, r.f1 === null ? "-" : r.f1.toFixed(2)))))))
      : "");
}

// Placed through the CSSOM: the console's CSP allows no inline style attribute.
function placed(node, [x, y, w, h]) {
  Object.assign(node.style, {left: `${100 * x}%`, top: `${100 * y}%`, width: `${100 * w}%`, height: `${100 * h}%`});
  return node;
}

function imageCard(image, set, rows) {
  const picture = el("div", {class: "review-picture"}, image.picture ? el("img", {src: image.picture, alt: image.uri})
    : el("div", {class: "no-picture"}, "the picture is not served (the tables record no archive)"));
  const overlays = image.boxes.map(b => placed(el("div", {class: "review-box"}, b.label), b.bbox));
  picture.append(...overlays, ...image.added.map(a => placed(el("div", {class: "review-box added"}, a.label), a.bbox)));
  const body = extra => ({...occDecision(), model: set.model, filters_hash: set.filters_hash, ...extra});
  const decide = async (path, extra, done) => {
    try {
      const r = await api("POST", path, body(extra));
      say(`${r.decision.action} recorded (${r.decision.decision_id})`);
      done(r.decision);
    } catch (e) { say(e.message); }
  };
  const list = el("ul", {class: "review-boxes"});
  image.boxes.forEach((b, i) => {
    const key = {uri: b.uri, content_id: b.content_id, detection_index: b.detection_index};
    const verdict = el("span", {class: "verdict"}, b.verdict === null ? "" : ` → ${b.verdict}`);
    const mark = text => { verdict.textContent = ` → ${text}`; };
    const label = el("input", {type: "text", placeholder: "right label", "aria-label": "right label", class: "relabel"});
    const row = el("li", {class: "review-row"}, `#${b.detection_index} ${b.label} ${b.score.toFixed(2)}`, verdict, " ",
      el("button", {type: "button", on: {click: () => row.confirm()}}, "Confirm (c)"),
      el("button", {type: "button", on: {click: () => row.reject()}}, "Reject (x)"),
      el("form", {class: "inline", on: {submit: ev => { ev.preventDefault(); row.relabel(); }}}, label,
         el("button", {type: "submit"}, "Relabel (l)")));
    row.confirm = () => decide("/v1/review/confirm", key, () => { mark(b.label); rows.next(); });
    row.reject = () => decide("/v1/review/reject", key, () => { mark("not an animal"); rows.next(); });
    row.relabel = () => label.value.trim() ? decide("/v1/review/relabel", {...key, label: label.value.trim()},
                                                   () => { mark(label.value.trim()); label.blur(); rows.next(); })
                                           : label.focus();
    row.overlay = overlays[i];
    row.empty = () => card.empty();
    row.add = () => card.add();
    rows.push(row);
    list.append(row);
  });
  // a missed box: dragged on the picture, then its label typed (Enter sends)
  const addLabel = el("input", {type: "text", placeholder: "label of the missed animal", "aria-label": "missed label"});
  let drawn = null;
  const add = el("form", {class: "inline add-box", on: {submit: ev => {
    ev.preventDefault();
    if (!drawn || !addLabel.value.trim()) { say("drag a box on the picture, then type its label"); return; }
    decide("/v1/review/add", {uri: image.uri, content_id: image.content_id, bbox: drawn, label: addLabel.value.trim()},
           () => { picture.querySelector(".drawing")?.classList.replace("drawing", "added"); drawn = null; addLabel.value = ""; });
  }}}, addLabel, el("button", {type: "submit"}, "Add box (a)"));
  picture.addEventListener("pointerdown", ev => {
    ev.preventDefault();
    const r = picture.getBoundingClientRect();
    const at = e => [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))];
    const [x0, y0] = at(ev);
    const box = el("div", {class: "review-box drawing"});
    picture.querySelector(".drawing")?.remove();
    picture.append(box);
    const move = e => {
      const [x1, y1] = at(e);
      drawn = [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
      placed(box, drawn);
    };
    picture.addEventListener("pointermove", move);
    picture.addEventListener("pointerup", () => { picture.removeEventListener("pointermove", move); addLabel.focus(); }, {once: true});
  });
  const card = el("div", {class: "card review-image"},
    el("div", {class: "wrap"}, `${image.camera_id || "-"} ${image.capture_time || ""} ${image.uri}`), picture, list,
    el("div", {}, el("button", {type: "button", on: {click: () => card.empty()}}, "Empty image (e)"), " ", add));
  card.empty = () => decide("/v1/review/empty", {uri: image.uri, content_id: image.content_id}, () => {
    list.querySelectorAll(".verdict").forEach(v => { v.textContent = " → not an animal (empty)"; });
    rows.next();
  });
  card.add = () => { addLabel.focus(); say("drag the missed animal's box on the picture, then type its label"); };
  if (!image.boxes.length) rows.push({overlay: null, empty: card.empty, add: card.add, card});  // an image without boxes
  return card;
}

// The selection the keys act on: one box (or an image without any) at a time.
function selection() {
  const rows = [];
  let at = 0;
  const show = () => rows.forEach((r, i) => {
    (r.card || r).classList.toggle("selected", i === at);
    if (r.overlay) r.overlay.classList.toggle("selected", i === at);
    if (i === at) (r.card || r).scrollIntoView({block: "nearest"});
  });
  rows.next = () => { at = Math.min(rows.length - 1, at + 1); show(); };
  rows.previous = () => { at = Math.max(0, at - 1); show(); };
  rows.current = () => rows[at];
  rows.show = show;
  return rows;
}

function keysFor(rows, current) {
  const act = {c: "confirm", x: "reject", l: "relabel", e: "empty", a: "add"};
  const onKey = ev => {
    if (!current()) { document.removeEventListener("keydown", onKey); return; }  // another page is shown
    if (ev.target.closest && ev.target.closest("input, select, textarea")) return;  // typing a label
    if (ev.key === "j") { rows.next(); return; }
    if (ev.key === "k") { rows.previous(); return; }
    const verb = act[ev.key];
    const row = rows.current();
    if (!verb || !row || !row[verb]) return;
    ev.preventDefault();
    row[verb]();
  };
  document.addEventListener("keydown", onKey);
}

async function reviewPage(current) {
  const f = filters();
  const query = {model: f.model || "", camera: f.camera || "", todo: f.all ? "false" : "true", limit: 20};
  const [[data, problem], known] = await Promise.all([
    orProblem(api("GET", "/v1/review/images?" + new URLSearchParams({...(chosenTables() ? {tables: chosenTables()} : {}),
                                                                     ...Object.fromEntries(Object.entries(query).filter(([, v]) => v))})),
              {images: [], total: 0, model: ""}),
    knownLocations()]);
  let accuracy = "";
  if (data.model) {
    const [name, version] = data.model.split(":");
    const q = new URLSearchParams({...(chosenTables() ? {tables: chosenTables()} : {}), filters_hash: data.filters_hash});
    accuracy = await api("GET", `/v1/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}/accuracy?${q}`)
      .then(accuracyCard, e => el("p", {class: "problem"}, e.message));
  }
  if (!current()) return false;
  const [model] = tableModelPicker(known, chosenTables(), {name: "model", value: f.model || ""});
  const camera = el("input", {type: "text", name: "camera", placeholder: "camera", value: f.camera || "", "aria-label": "camera"});
  const all = el("select", {name: "all", "aria-label": "which images"},
    [["", "not reviewed yet"], ["yes", "all images"]].map(([v, t]) => el("option", {value: v, selected: (f.all || "") === v}, t)));
  const rows = selection();
  const cards = data.images.map(i => imageCard(i, data, rows));
  page.replaceChildren(el("h1", {}, `Review (${data.total})` + (data.model ? ` of ${data.model}` : "")),
    peopleForm("review", ["model", "camera", "all"], tablesField(known), model, camera, all, whoField()),
    accuracy, el("p", {class: "keys"}, KEYS),
    ...(cards.length ? cards : [el("p", {class: "problem"}, problem || "nothing left to review here")]));
  rows.show();
  keysFor(rows, current);
  return false;
}

export const pages = {review: reviewPage};
