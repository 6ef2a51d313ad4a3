// The Individuals pages: the weekly figures and readiness to name; every individual of the newest identify run as a
// strip of its sightings, with a Name control; one individual's sightings (reject one, "no match") beside the closest
// other individuals, to merge; and the review queue of uncertain matches. Over /v1/individuals
// (batch/views/individuals.py).

import {api, el, enc, page, say} from "./api.js";
import {occDecision, orProblem, peopleFilters, snipImage} from "./people.js";
import {knownLocations} from "./pickers.js";
import {route} from "./router.js";
import {kept, tablesQuery} from "./state.js";

export const nav = [["#/individuals", "Individuals", 80]];

const IND_STRIP = 6;  // snips shown per individual in the list (each one is a request)

function indName(i) { return i.name ? `${i.name} (${i.individual_id})` : i.individual_id; }

function indStrip(i, count = IND_STRIP) {
  const strip = el("div", {class: "strip"});
  const link = n => `/v1/individuals/${enc(i.individual_id)}/sightings/${n}/snip?` + tablesQuery();
  Promise.all([...Array(Math.min(i.sightings, count)).keys()].map(n => snipImage(link(n), `sighting ${n + 1}`)))
    .then(imgs => strip.replaceChildren(...imgs));
  return strip;
}

async function decideIndividuals(body, what) {
  try {
    const r = await api("POST", "/v1/individuals/decisions", {...body, ...occDecision()});
    say(`${what}: ${r.individual ? indName(r.individual) + ", " + r.individual.sightings + " sighting(s)" : "recorded"}`);
    route();
  } catch (e) { say(e.message); }
}

function nameForm(i) {
  const name = el("input", {type: "text", placeholder: "name", "aria-label": "name", value: i.name || ""});
  return el("form", {class: "identify name", on: {submit: ev => {
    ev.preventDefault();
    if (!name.value.trim()) { say("give a name"); return; }
    decideIndividuals({action: "name", individual_id: i.individual_id, name: name.value.trim()}, "named");
  }}}, name, el("button", {type: "submit"}, "Name"));
}

function indSummary(i) {
  return `${i.label}, ${i.sightings} sighting(s), camera(s) ${i.cameras.join(", ")}, ${(i.first_seen || "-").slice(0, 16)} to `
    + `${(i.last_seen || "-").slice(0, 16)}` + (i.confirmed ? ", confirmed" : "");
}

// Per week: sightings, the share assigned, individuals seen and new, profiles and their change; ready to name?
// (GET /v1/individuals/weekly, the deer project's thresholds as the service's defaults.)
function weeklyView(w) {
  if (!w || !w.weeks.length) return "";
  const share = x => x === null || x === undefined ? "-" : `${(100 * x).toFixed(1)}%`;
  return el("details", {class: "card", id: "weekly", open: true},
    el("summary", {}, el("strong", {id: "readiness", class: w.readiness.ready ? "kept" : ""},
      w.readiness.ready ? "Ready to name" : "Not ready to name yet"), ` (${w.weeks.length} week(s))`),
    el("ul", {}, w.readiness.reasons.map(r => el("li", {class: r.startsWith("ok") ? "kept" : ""}, r))),
    el("div", {class: "scroll"}, el("table", {},
      el("thead", {}, el("tr", {}, ["week of", "sightings", "assigned", "individuals seen", "new", "profiles",
                                     "profile change"].map(h => el("th", {}, h)))),
      el("tbody", {}, w.weeks.slice().reverse().map(k => el("tr", {}, el("td", {}, k.week), el("td", {}, k.sightings),
        el("td", {}, `${k.assigned} (${share(k.assigned_share)})`), el("td", {}, k.individuals_seen),
        el("td", {}, k.new_individuals), el("td", {}, k.profiles), el("td", {}, share(k.profile_change))))))));
}

async function individualsPage(current = () => true) {
  const filters = kept("individuals");
  const [[data, problem], weekly, known] = await Promise.all([
    orProblem(api("GET", "/v1/individuals?" + tablesQuery({...filters, limit: 24})), {individuals: [], total: 0, run_id: null}),
    api("GET", "/v1/individuals/weekly?" + tablesQuery()).catch(() => null),  // the list says why, when it cannot
    knownLocations()]);
  if (!current()) return false;

  const confirmed = el("select", {name: "confirmed", "aria-label": "confirmed"},
    ["", "true", "false"].map(v => el("option", {value: v, selected: filters.confirmed === v}, {"": "confirmed or not", "true": "confirmed", "false": "not confirmed"}[v])));
  const cards = data.individuals.map(i => el("div", {class: "card individual", id: "ind-" + i.individual_id},
    el("div", {}, el("a", {href: "#/individual/" + enc(i.individual_id)}, indName(i)), " " + indSummary(i)),
    indStrip(i), nameForm(i)));
  const none = data.run_id ? "no individuals match" : "no identify run on these tables yet (trapline identify, or Start a job)";
  page.replaceChildren(el("h1", {}, `Individuals (${data.total})`),
    peopleFilters(known, "individuals", filters, [confirmed]),
    weeklyView(weekly),
    el("p", {}, el("a", {href: "#/review-individuals"}, "Review uncertain matches")),
    ...(cards.length ? cards : [el("p", {class: "problem"}, problem || none)]));
  return false;
}

async function individualPage(current, id) {
  const i = await api("GET", `/v1/individuals/${enc(id)}?` + tablesQuery());
  const snips = await Promise.all(i.sightings_shown.map(s => snipImage(s.snip, `${s.capture_time} ${s.rel_path || s.uri}`)));
  if (!current()) return false;

  const key = s => ({uri: s.uri, content_id: s.content_id, detection_index: s.detection_index});
  const rows = i.sightings_shown.map((s, n) => el("tr", {},
    el("td", {}, snips[n]), el("td", {}, (s.capture_time || "-").slice(0, 19)), el("td", {}, s.camera_id || "-"),
    el("td", {class: "wrap"}, s.rel_path || s.uri), el("td", {}, s.p_same === null ? "-" : s.p_same.toFixed(2)),
    el("td", {}, s.decision),
    el("td", {}, el("button", {class: "reject", on: {click: () => decideIndividuals(
         {action: "reject_sighting", individual_id: i.individual_id, sighting: key(s)}, "not this individual")}}, "Not this one"),
       " ", el("button", {class: "new-individual", on: {click: () => decideIndividuals(
         {action: "new_individual", sighting: key(s)}, "a new individual")}}, "No match"))));
  const closest = i.closest.map(c => el("div", {class: "card candidate", id: "cand-" + c.individual_id},
    el("div", {}, el("a", {href: "#/individual/" + enc(c.individual_id)}, indName(c)),
       ` P(same) ${c.p_same.toFixed(2)}; ` + indSummary(c)),
    indStrip(c),
    el("button", {class: "merge", on: {click: () => decideIndividuals(
      {action: "merge", individual_id: i.individual_id, other_id: c.individual_id}, "merged")}}, `Merge into ${indName(i)}`)));
  page.replaceChildren(
    el("h1", {}, "Individual ", el("span", {id: "individual-id"}, indName(i))),
    el("div", {class: "card"}, el("div", {}, indSummary(i)), nameForm(i)),
    el("h2", {}, "Sightings"),
    el("div", {class: "scroll"}, el("table", {id: "sightings"},
      el("thead", {}, el("tr", {}, ["snip", "captured", "camera", "image", "P(same)", "decision", "decide"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows))),
    el("h2", {}, "Closest other individuals"),
    ...(closest.length ? closest : [el("p", {}, "none close")]),
    el("h2", {}, "History"),
    i.history.length ? el("ul", {id: "history"}, i.history.map(h => el("li", {},
      `${h.at.slice(0, 19).replace("T", " ")} ${h.who}: ${h.action}` + (h.name ? ` ${h.name}` : "") + (h.comment ? ` (${h.comment})` : ""))))
      : el("p", {}, "no decisions yet"));
  return false;
}

async function reviewIndividualsPage(current) {
  const q = await api("GET", "/v1/individuals/review?" + tablesQuery({limit: 20}));
  const snips = await Promise.all(q.sightings.map(s => snipImage(s.snip, `${s.capture_time} ${s.rel_path || s.uri}`)));
  if (!current()) return false;
  const key = s => ({uri: s.uri, content_id: s.content_id, detection_index: s.detection_index});
  const cards = q.sightings.map((s, n) => el("div", {class: "card review"},
    el("div", {}, snips[n], ` ${s.rel_path || s.uri}: P(same) ${s.p_same.toFixed(2)} to `,
       el("a", {href: "#/individual/" + enc(s.individual_id)}, s.individual_id)),
    el("button", {class: "confirm", on: {click: () => decideIndividuals(
      {action: "confirm_sighting", individual_id: s.individual_id, sighting: key(s)}, "confirmed")}}, "Same animal"),
    " ", el("button", {class: "reject", on: {click: () => decideIndividuals(
      {action: "reject_sighting", individual_id: s.individual_id, sighting: key(s)}, "not this individual")}}, "Not this one")));
  page.replaceChildren(el("h1", {}, `Uncertain matches (${q.total}), P(same) ${q.low} to ${q.high}`),
    ...(cards.length ? cards : [el("p", {}, "nothing to review")]));
  return false;
}

export const pages = {individuals: individualsPage, individual: individualPage, "review-individuals": reviewIndividualsPage};
