// The Cameras page: one tile per camera with its newest capture, the kept boxes drawn over it, their labels,
// scores and species, the snips beneath, the capture time and counts; paged; refreshed while uploads commit.
// Also the picture helpers the Captures page uses (a picture with its boxes, a picture that says when it is broken, a
// clip's poster and strip of frames), the pictures pages' tables field, and the turn of an old `source=` link into
// the tables it named.

import {api, el, enc, page, say} from "./api.js";
import {tablesField} from "./people.js";
import {knownLocations} from "./pickers.js";
import {route} from "./router.js";
import {chooseTables, chosenTables, tablesQuery} from "./state.js";

export const nav = [["#/cameras", "Cameras", 10]];

const CAMERAS_PER_PAGE = 24;
const PICTURES_REFRESH_MS = 10000;

// A picture that says so when it cannot be shown (a moved file, an expired link), never an empty box.
export function picture(url, alt, cls = "", missing = "this picture is not served here (no archive recorded for these tables)") {
  if (!url) return el("div", {class: "picture-missing " + cls}, missing);
  const img = el("img", {src: url, alt, class: cls, loading: "lazy", decoding: "async"});
  img.addEventListener("error", () => img.replaceWith(el("div", {class: "picture-missing " + cls}, `picture not available: ${alt}`)));
  return img;
}

// The boxes are positioned in % of the picture (bbox: x, y, w, h normalised, top-left origin), so they stay in place
// at any rendered size; style properties are set from script (the CSP forbids style attributes).
function boxDiv(d, showLabel = true) {
  const [x, y, w, h] = d.bbox;
  const box = el("div", {class: "box" + (d.kept === false ? " dropped-box" : ""), "data-index": d.detection_index,
                         title: boxText(d)}, showLabel ? el("span", {class: "box-label"}, boxText(d)) : "");
  box.style.left = (100 * x) + "%";
  box.style.top = (100 * y) + "%";
  box.style.width = (100 * w) + "%";
  box.style.height = (100 * h) + "%";
  return box;
}

export function boxText(d) {
  return `${d.label} ${d.score.toFixed(2)}` + (d.species ? ` · ${d.species}` : "");
}

export function framed(url, alt, boxes, cls = "", missing = undefined) {
  const img = picture(url, alt, "", missing);
  const seen = new Map();  // boxes in the same place (one animal, two labels): their labels one under the other
  const divs = img.tagName === "IMG" ? boxes.map(d => {
    const div = boxDiv(d), at = d.bbox.map(v => v.toFixed(3)).join();
    const k = seen.get(at) || 0;
    seen.set(at, k + 1);
    if (k) div.firstChild.style.top = (1.25 * k) + "em";
    return div;
  }) : [];
  return el("div", {class: "framed " + cls}, img, divs, img.tagName === "IMG" ? maskOutlines(boxes) : "");
}

// A segmentation model's masks (d.outline: polygons normalised 0..1), one SVG over the picture scaled with it.
function maskOutlines(boxes) {
  const shaped = boxes.filter(d => d.outline && d.outline.length);
  if (!shaped.length) return "";
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "mask-outlines");
  svg.setAttribute("viewBox", "0 0 1 1");
  svg.setAttribute("preserveAspectRatio", "none");
  for (const d of shaped) {
    for (const ring of d.outline) {
      const poly = document.createElementNS(ns, "polygon");
      poly.setAttribute("points", ring.map(([x, y]) => `${x},${y}`).join(" "));
      poly.setAttribute("class", "mask-outline" + (d.kept === false ? " dropped-mask" : ""));
      poly.setAttribute("data-index", d.detection_index);
      svg.append(poly);
    }
  }
  return svg;
}

// A clip (kind video) is shown by its sampled frames, each box on one of them: its poster frame (that of its best
// kept box) with the poster's boxes, and a strip of the frames that hold a detection, each with its own.
export function posterBoxes(shown, boxes) {
  return shown.kind === "video" ? boxes.filter(d => d.frame_number === shown.poster_frame) : boxes;
}

export function clipBadge(shown) {
  return shown.kind === "video" ? el("span", {class: "clip-badge"}, `clip · ${shown.frames.length} frame(s) with a box`) : "";
}

export function clipStrip(c) {
  if (c.kind !== "video" || !c.frames.length) return "";
  return el("div", {class: "clip-strip", id: "clip-strip"}, c.frames.map(f => el("figure", {class: "clip-frame", "data-frame": f.frame_number},
    framed(f.url, `frame ${f.frame_number}`, c.detections.filter(d => d.frame_number === f.frame_number)),
    el("figcaption", {}, (f.offset_s === null ? "" : `${f.offset_s.toFixed(1)} s · `) + `frame ${f.frame_number}`))));
}

export function when(t) { return t ? t.replace("T", " ").slice(0, 19) : "time unknown"; }

// What the pictures pages pick from: the tables under the roots (GET /v1/locations) and those the service knows with
// their pictures (GET /v1/pictures/sources: the recording's, backfills', jobs.pictures), in the one tables field.
export async function picturesWhere() {
  const [{sources}, known] = await Promise.all([api("GET", "/v1/pictures/sources"), knownLocations()]);
  const listed = new Set(known.locations.map(l => l.path));
  const more = sources.filter(s => !listed.has(s.tables)).map(s => ({kind: "tables", path: s.tables, models: []}));
  return {sources, where: {...known, locations: [...known.locations, ...more]}};
}

export function picturesTablesField(where, sources) {
  return tablesField(where, "tables", null, sources.length ? `the first with pictures (${sources[0].tables})` : "none found");
}

// An old link (`#/cameras/source=NAME...`, from before every page picked tables): the tables that source names become
// the tables picked, and the page is shown without it, the old address replaced in the history. A redirect rather
// than an error: the console knows what the name meant and can show it.
export async function fromSource(params, name) {
  const {sources} = await api("GET", "/v1/pictures/sources");
  const s = sources.find(x => x.name === params.get("source"));
  if (s) chooseTables(s.tables);
  else say(`no source ${params.get("source")} on this service any more: pick the tables`);
  params.delete("source");
  location.replace("#/" + name + "/" + enc(params.toString()));
}

function cameraTile(cam) {
  const t = cam.latest;
  const head = el("div", {class: "tile-head"}, el("strong", {}, cam.camera),
    el("span", {class: "help"}, ` ${cam.images} image(s)`));
  const browse = el("a", {href: "#/captures/" + enc(new URLSearchParams({camera: cam.camera}).toString())}, "all captures");
  if (!t) return el("div", {class: "tile card", "data-camera": cam.camera}, head, el("p", {class: "help"}, "no capture yet"), browse);
  const open = "#/capture/" + enc(new URLSearchParams({uri: t.image.uri}).toString());
  const shown = posterBoxes(t.image, t.detections);  // a clip: its poster frame's
  const labels = shown.length
    ? el("ul", {class: "box-list"}, shown.map(d => el("li", {}, boxText(d))))
    : el("p", {class: "help"}, t.image.status === "failed" ? "failed: the file could not be read" : "nothing detected");
  const snips = t.snips.length ? el("div", {class: "snips"}, t.snips.map(s => picture(s.url, `snip ${s.detection_index}`, "snip"))) : "";
  return el("div", {class: "tile card", "data-camera": cam.camera}, head,
    el("a", {href: open, class: "tile-picture"}, framed(t.image.status === "failed" ? null : t.image.thumb_url,
      `${cam.camera} ${when(t.image.capture_time)}`, shown, "", "the newest file could not be read")),
    el("div", {class: "tile-time"}, when(t.image.capture_time), ` · ${t.detections.length} box(es) `, clipBadge(t.image)),
    labels, snips, browse);
}

export function pager(total, offset, limit, go) {
  if (total <= limit) return "";
  const prev = el("button", {type: "button", class: "prev", disabled: offset === 0}, "‹ previous");
  const next = el("button", {type: "button", class: "next", disabled: offset + limit >= total}, "next ›");
  prev.addEventListener("click", () => go(Math.max(0, offset - limit)));
  next.addEventListener("click", () => go(offset + limit));
  return el("div", {class: "pager"}, prev, el("span", {}, ` ${offset + 1}–${Math.min(total, offset + limit)} of ${total} `), next);
}

async function camerasPage(current, arg) {
  const params = new URLSearchParams(arg || "");
  if (params.has("source")) { await fromSource(params, "cameras"); return false; }
  const {sources, where} = await picturesWhere();
  if (!sources.length && !chosenTables()) {
    if (!current()) return false;
    page.replaceChildren(el("h1", {}, "Cameras"), el("p", {class: "empty-state"},
      "No pictures on this service yet: run `trapline reprocess` into a folder under its jobs' roots (the folder " +
      "`trapline serve` started in, by default), record uploads (`trapline serve --record ARCHIVE --tables TABLES`), " +
      "or name tables and their archive in `jobs.pictures` of the serve config."));
    return false;
  }
  const offset = Number(params.get("offset") || 0);
  const go = (changes) => {
    const hash = "#/cameras/" + enc(new URLSearchParams({offset, ...changes}).toString());
    if (location.hash === hash) route(); else location.hash = hash;
  };
  const query = tablesQuery({limit: CAMERAS_PER_PAGE, offset});
  const pick = ev => { ev.preventDefault(); chooseTables(new FormData(ev.target).get("tables") || ""); go({offset: 0}); };
  const tablesForm = el("div", {class: "toolbar"}, el("form", {class: "occ-filters", on: {submit: pick}},
    picturesTablesField(where, sources), el("button", {type: "submit"}, "Show")));
  let data;
  try { data = await api("GET", "/v1/pictures/cameras?" + query); } catch (e) {
    if (current()) page.replaceChildren(el("h1", {}, "Cameras"), tablesForm, el("p", {class: "empty-state"}, e.message));
    return false;
  }
  if (!current()) return false;
  const signature = JSON.stringify(data.cameras.map(c => [c.camera, c.images, c.latest && c.latest.image.uri]));
  const grid = data.cameras.length ? el("div", {class: "tiles", id: "camera-tiles"}, data.cameras.map(cameraTile))
    : el("p", {class: "empty-state"}, `No captures in ${data.tables} yet: its tables are empty.`);
  page.replaceChildren(el("h1", {}, `Cameras (${data.total})`), tablesForm,
    el("p", {class: "help", id: "pictures-tables"}, data.tables + (data.served ? "" : ": their pictures are not served here")),
    grid, pager(data.total, offset, CAMERAS_PER_PAGE, o => go({offset: o})));
  // Refreshed as uploads commit: poll quietly, repaint only when a camera's newest capture or count changed.
  const poll = async () => {
    if (!current()) return;
    try {
      const again = await api("GET", "/v1/pictures/cameras?" + query);
      const now = JSON.stringify(again.cameras.map(c => [c.camera, c.images, c.latest && c.latest.image.uri]));
      if (!current()) return;
      if (now !== signature) { route(); return; }
    } catch (e) { /* a missed refresh is tried again */ }
    setTimeout(poll, PICTURES_REFRESH_MS);
  };
  setTimeout(poll, PICTURES_REFRESH_MS);
  return false;
}

export const pages = {cameras: camerasPage};

// Which rule decided a classification (the species ensemble's `source`, e.g. classifier+geofence+rollup_to_family),
// shown beside its label and score; nothing for a plain classifier's answer.
export function decidedBy(c) {
  return c.source ? ` · by ${c.source}` : "";
}
