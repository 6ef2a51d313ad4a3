// The Occurrences page: each occurrence (one animal's detections across frames) as a strip of its snips, its
// determination and how it was reached, an Identify control; one occurrence's frames with their classifications
// and a control to correct one. Over /v1/occurrences (batch/views/occurrences.py).

import {api, el, enc, page, say} from "./api.js";
import {decidedBy} from "./cameras.js";
import {occDecision, orProblem, peopleFilters, snipImage} from "./people.js";
import {knownLocations, tableModelPicker} from "./pickers.js";
import {route} from "./router.js";
import {chosenTables, kept, tablesQuery} from "./state.js";

export const nav = [["#/occurrences", "Occurrences", 70]];

const OCC_STRIP = 6;  // snips shown per occurrence in the list (each one is a request)

function occFilters() { return kept("occurrences"); }

// The model version picked among those the tables hold ("": the one they hold), read and decided on throughout.
function occModel() { return occFilters().model || ""; }

function decision() { return {...occDecision(), ...(occModel() ? {model: occModel()} : {})}; }

function determinationText(d) {
  const score = d.score === null || d.score === undefined ? "" : ` ${d.score.toFixed(2)}`;
  if (d.how === "human") {
    const model = d.model_label && d.model_label !== d.label ? `; the model says ${d.model_label}` : "";
    return `${d.label} (identified by ${d.identified_by}${model})`;
  }
  return `${d.label || "-"}${score} (model vote)`;
}

function identifyForm(o, done) {
  const label = el("input", {type: "text", placeholder: "label", "aria-label": "label", class: "identify-label"});
  const comment = el("input", {type: "text", placeholder: "comment (optional)", "aria-label": "comment"});
  const send = async ev => {
    ev.preventDefault();
    if (!label.value.trim()) { say("give a label"); return; }
    try {
      const body = {label: label.value.trim(), ...(comment.value ? {comment: comment.value} : {}), ...decision()};
      const r = await api("POST", `/v1/occurrences/${enc(o.occurrence_id)}/identify`, body);
      say(`${o.occurrence_id}: ${determinationText(r.determination)}`);
      done();
    } catch (e) { say(e.message); }
  };
  return el("form", {class: "identify", on: {submit: send}}, label, comment, el("button", {type: "submit"}, "Identify"));
}

async function occurrencesPage(current = () => true) {
  const filters = occFilters();
  // least certain first: the review queue (GET /v1/occurrences/review), the merges a person should look at
  const review = filters.order === "least_certain";
  const {order, ...where} = filters;
  const [[data, problem], known] = await Promise.all([
    orProblem(review ? api("GET", "/v1/occurrences/review?" + tablesQuery({limit: 20, model: occModel()}))
                     : api("GET", "/v1/occurrences?" + tablesQuery({...where, limit: 20})), {occurrences: [], total: 0}),
    knownLocations()]);
  if (!current()) return false;

  // the table set: the tables (picked in the filters form) and one of the model versions they hold
  const [model, refillModels] = tableModelPicker(known, chosenTables(), {name: "model", value: filters.model || ""});
  const how = el("select", {name: "determined_by", "aria-label": "determined by"},
    ["", "model", "human"].map(v => el("option", {value: v, selected: filters.determined_by === v}, v || "model or human")));
  const sorted = el("select", {name: "order", "aria-label": "order"},
    [["", "newest first"], ["least_certain", "least certain links first"]].map(([v, text]) =>
      el("option", {value: v, selected: (filters.order || "") === v}, text)));
  const cards = data.occurrences.map(o => {
    const strip = el("div", {class: "strip"});
    const link = n => `/v1/occurrences/${enc(o.occurrence_id)}/snips/${n}?` + tablesQuery({model: data.model, filters_hash: data.filters_hash});
    Promise.all([...Array(Math.min(o.detections, OCC_STRIP)).keys()].map(n => snipImage(link(n), `frame ${n + 1}`)))
      .then(imgs => strip.replaceChildren(...imgs));
    return el("div", {class: "card occurrence", id: "occ-" + o.occurrence_id},
      el("div", {}, el("a", {href: "#/occurrence/" + enc(o.occurrence_id)}, o.occurrence_id),
         ` camera ${o.camera_id}, ${o.first_time} to ${o.last_time}, ${o.frames} frame(s)`, o.confirmed ? "" : " (unconfirmed)",
         o.detections > 1 && o.link_confidence !== null
           ? el("span", {class: "link-confidence"}, ` weakest link ${o.link_confidence.toFixed(2)}`) : ""),
      strip,
      el("div", {class: "determination", "data-how": o.determination.how}, determinationText(o.determination)),
      identifyForm(o, route));
  });
  page.replaceChildren(el("h1", {}, `Occurrences (${data.total})` + (data.model ? ` of ${data.model}` : "")),
    peopleFilters(known, "occurrences", filters, [model, how, sorted], refillModels),
    ...(cards.length ? cards : [el("p", {class: "problem"}, problem || "no occurrences")]));
  return false;
}

async function occurrencePage(current, id) {
  const o = await api("GET", `/v1/occurrences/${enc(id)}?` + tablesQuery({model: occModel()}));
  const frames = await Promise.all(o.frames_shown.map(f => snipImage(f.snip, `${f.capture_time} #${f.detection_index}`)));
  if (!current()) return false;

  const classify = f => {
    const label = el("input", {type: "text", placeholder: "label", "aria-label": "label"});
    return el("form", {class: "classify", on: {submit: async ev => {
      ev.preventDefault();
      try {
        const r = await api("POST", `/v1/occurrences/${enc(id)}/classify`, {uri: f.uri, content_id: f.content_id,
          detection_index: f.detection_index, label: label.value.trim(), ...decision()});
        say(`${id}: ${determinationText(r.determination)}`);
        route();
      } catch (e) { say(e.message); }
    }}}, label, el("button", {type: "submit"}, "Correct"));
  };
  // A person's cut: this frame and the later ones are another animal (applied by the next track run).
  const cut = f => el("button", {type: "button", class: "cut", on: {click: async () => {
    try {
      await api("POST", `/v1/occurrences/${enc(id)}/split`, {at: {uri: f.uri, content_id: f.content_id,
        detection_index: f.detection_index}, ...decision()});
      say(`${id}: cut before ${f.uri} #${f.detection_index}; the next track run applies it`);
      route();
    } catch (e) { say(e.message); }
  }}}, "Cut here");
  const weakest = o.weakest_link;
  const isWeakest = f => weakest && f.uri === weakest.uri && f.content_id === weakest.content_id
    && f.detection_index === weakest.detection_index;
  const rows = o.frames_shown.map((f, i) => el("tr", isWeakest(f) ? {class: "weakest-link", title: "the least certain link"} : {},
    el("td", {}, frames[i]), el("td", {}, f.capture_time || "-"), el("td", {class: "wrap"}, f.uri + " #" + f.detection_index),
    el("td", {}, `${f.label} ${f.score === null ? "" : f.score.toFixed(2)}`),
    el("td", {class: "wrap"}, f.classifications.map(c => `${c.classifier}: ${c.label} ${c.score.toFixed(2)}${decidedBy(c)}`).join("; ") || "-"),
    el("td", {}, f.vote ? `${f.vote.label} (${f.vote.source})` : "-"), el("td", {}, classify(f), i ? cut(f) : "")));
  page.replaceChildren(
    el("h1", {}, "Occurrence ", el("span", {id: "occurrence-id"}, o.occurrence_id)),
    el("div", {class: "card"}, el("div", {}, `${o.model}, camera ${o.camera_id}, ${o.first_time} to ${o.last_time}, ${o.frames} frame(s)`
                                   + (o.detections > 1 && o.link_confidence !== null ? `, weakest link ${o.link_confidence.toFixed(2)}` : "")),
       el("div", {class: "determination", "data-how": o.determination.how}, determinationText(o.determination)),
       identifyForm(o, route),
       el("p", {}, el("a", {id: "rerun-occurrence", href: "#/postprocess/" + enc(o.occurrence_id)},
                      "Re-run post-processing on this occurrence"))),
    el("h2", {}, "Frames"),
    el("div", {class: "scroll"}, el("table", {id: "frames"},
      el("thead", {}, el("tr", {}, ["snip", "captured", "image", "detector", "classifications", "vote", "correct or cut"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows))),
    el("h2", {}, "History"),
    o.history.length ? el("ul", {id: "history"}, o.history.map(h => el("li", {},
      `${h.at.slice(0, 19).replace("T", " ")} ${h.who}: ${h.action} ${h.label || ""}` + (h.comment ? ` (${h.comment})` : ""))))
      : el("p", {}, "no decisions yet"));
  return false;
}

export const pages = {occurrences: occurrencesPage, occurrence: occurrencePage};
