// The Deployments page: the deployments of a tables set with their pictures; a Camtrap DP file to import; the clock
// corrections in force, a form to give one and a button to revoke one; timestampIssues; the clock problems `trapline
// tables check` finds; effort, trap rates and the detection-history CSV. Over /v1/deployments
// (batch/views/deployments.py). The tables picked here are the ones every page shows (state.js keeps them).

import {api, authHeaders, el, enc, page, say} from "./api.js";
import {occDecision, orProblem, peopleForm, tablesField, whoField} from "./people.js";
import {knownLocations} from "./pickers.js";
import {route} from "./router.js";
import {keep, kept, tablesQuery} from "./state.js";

export const nav = [["#/deployments", "Deployments", 90]];

const dateTime = iso => iso ? iso.slice(0, 19).replace("T", " ") : "-";

async function depDecide(path, body, what) {
  try {
    const r = await api("POST", path, {...body, ...occDecision()});
    say(`${what} (${r.decision_id || r.import_id || "recorded"})`);
    route();
  } catch (e) { say(e.message); }
}

// The tables (picked from the known ones) and who decides; kept for the other people pages.
async function depTablesForm() {
  return peopleForm(null, [], tablesField(await knownLocations(), "dep-tables"), whoField());
}

function depTable(list) {
  const mark = d => el("button", {type: "button", class: d.timestampIssues ? "clear-issues" : "mark-issues",
    title: "a clock that cannot be fixed: exported with Camtrap DP's timestampIssues", on: {click: () => depDecide(
      `/v1/deployments/${enc(d.deploymentID)}/timestamp-issues`, {issues: !d.timestampIssues},
      `${d.deploymentID}: timestampIssues ${!d.timestampIssues}`)}}, d.timestampIssues ? "Clear" : "Mark");
  const where = d => (d.locationName || d.locationID || "") + (d.latitude === null ? "" : ` (${d.latitude}, ${d.longitude})`);
  return el("div", {class: "scroll"}, el("table", {id: "deployments"},
    el("thead", {}, el("tr", {}, ["deployment", "camera", "where", "start (UTC)", "end (UTC)", "zone", "pictures",
                                   "first picture (UTC)", "last picture (UTC)", "timestampIssues"].map(h => el("th", {}, h)))),
    el("tbody", {}, list.deployments.length ? list.deployments.map(d => el("tr", {"data-deployment": d.deploymentID},
      el("td", {}, d.deploymentID), el("td", {}, d.cameraID), el("td", {class: "wrap"}, where(d)),
      el("td", {}, dateTime(d.start_utc)), el("td", {}, dateTime(d.end_utc)), el("td", {}, d.timezone || "-"),
      el("td", {class: "pictures"}, d.pictures), el("td", {class: "first"}, dateTime(d.first_utc)),
      el("td", {class: "last"}, dateTime(d.last_utc)),
      el("td", {}, d.timestampIssues ? "yes " : "no ", mark(d))))
      : el("tr", {}, el("td", {colspan: 10}, "no deployments recorded: import a Camtrap DP deployments file below")))));
}

function importForm() {
  const file = el("input", {type: "file", accept: ".csv,.json", "aria-label": "deployments file", required: true});
  const zone = el("input", {type: "text", list: "time-zones", placeholder: "zone of rows without one (Europe/Amsterdam)",
                            "aria-label": "time zone"});
  return el("form", {class: "identify", id: "import-form", on: {submit: async ev => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) { say("pick a deployments file (.csv or .json)"); return; }
    await depDecide("/v1/deployments", {file: {name: f.name, text: await f.text()}, ...(zone.value ? {timezone: zone.value} : {})},
                    `${f.name} recorded`);
  }}}, file, zone, el("button", {type: "submit"}, "Import (admin token)"));
}

function correctionsTable(list) {
  return el("div", {class: "scroll"}, el("table", {id: "corrections"},
    el("thead", {}, el("tr", {}, ["camera", "recorded from", "recorded until", "ahead by", "zone", "who", "when", "why", ""]
      .map(h => el("th", {}, h)))),
    el("tbody", {}, list.clock_corrections.length ? list.clock_corrections.map(c => el("tr", {"data-decision": c.decision_id},
      el("td", {}, c.camera_id), el("td", {}, dateTime(c.recorded_from)), el("td", {}, dateTime(c.recorded_until)),
      el("td", {}, c.offset_s ? `${c.offset_s} s` : "-"), el("td", {}, c.zone || "-"), el("td", {}, c.who),
      el("td", {}, dateTime(c.at)), el("td", {class: "wrap"}, c.comment || ""),
      el("td", {}, el("button", {type: "button", class: "revoke danger", on: {click: () => {
        if (confirm(`Revoke the correction of ${c.camera_id}? It stays in the log.`)) {
          depDecide(`/v1/deployments/decisions/${enc(c.decision_id)}/revoke`, {}, `${c.camera_id}: correction revoked`);
        }
      }}}, "Revoke"))))
      : el("tr", {}, el("td", {colspan: 9}, "no clock corrections")))));
}

// "Camera X's clock was Δ ahead (or on zone Z) for the readings from T1 to T2": times as the camera wrote them.
function clockForm(cameras) {
  const field = (label, input, help) => [el("label", {for: input.id}, label), input, el("div", {class: "help"}, help)];
  const camera = el("input", {type: "text", id: "clock-camera", list: "dep-cameras", required: true});
  const from = el("input", {type: "datetime-local", step: "1", id: "clock-from", required: true});
  const until = el("input", {type: "datetime-local", step: "1", id: "clock-until", required: true});
  const offset = el("input", {type: "number", step: "any", id: "clock-offset", placeholder: "3780"});
  const zone = el("input", {type: "text", id: "clock-zone", list: "time-zones", placeholder: "Europe/Amsterdam"});
  const comment = el("input", {type: "text", id: "clock-comment", placeholder: "what showed it"});
  return el("form", {class: "grid", id: "clock-form", on: {submit: ev => {
    ev.preventDefault();
    depDecide("/v1/deployments/clock", {camera_id: camera.value.trim(), recorded_from: from.value, recorded_until: until.value,
      ...(offset.value ? {offset_s: Number(offset.value)} : {}), ...(zone.value ? {zone: zone.value} : {}),
      ...(comment.value ? {comment: comment.value} : {})}, `${camera.value}: clock corrected`);
  }}},
    el("datalist", {id: "dep-cameras"}, cameras.map(c => el("option", {value: c}))),
    ...field("camera *", camera, ""),
    ...field("recorded from *", from, "the first reading it covers, as the camera's clock wrote it"),
    ...field("recorded until *", until, "the last reading it covers"),
    ...field("clock ahead by (s)", offset, "true time = recorded - this; 1 h 03 min fast is 3780, slow is negative"),
    ...field("read as zone", zone, "or: the camera ran on this zone's local time"),
    ...field("why", comment, "kept in the decisions log with your name"),
    el("span"), el("button", {type: "submit"}, "Record the correction (admin token)"));
}

function problemsList(clock) {
  if (clock.error) return el("p", {class: "problem"}, clock.error);
  if (!clock.problems.length) return el("p", {id: "clock-problems"}, "no clock problems found");
  return el("ul", {id: "clock-problems"}, clock.problems.map(p => el("li", {class: p.hint ? "hint" : "clock-problem"},
    el("strong", {}, p.kind), ` ${p.camera_id}` + (p.deployment_id ? ` (${p.deployment_id})` : "") + `: ${p.detail} `
    + `[${p.pictures} picture(s), first ${p.first_uri}] ` + (p.hint ? "(a hint) " : ""),
    el("button", {type: "button", class: "fix", on: {click: () => {  // the correction form, for this camera
      document.getElementById("clock-camera").value = p.camera_id;
      document.getElementById("clock-from").focus();
    }}}, "Correct this camera"))));
}

// The effort settings (the service's defaults until changed), kept for the session.
function effortSettings() { return kept("deployments-effort"); }

function settingsForm(effort) {
  const input = (name, value, label, min) => el("label", {}, label + " ",
    el("input", {type: "number", name, value, step: "any", min, "aria-label": label}));
  return el("form", {class: "identify inline", id: "effort-settings", on: {submit: ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    keep("deployments-effort", {gap_days: f.get("gap_days"), independence_min: f.get("independence_min")});
    route();
  }}}, input("gap_days", effort.gap_days, "no effort after days without pictures", "0.01"),
     input("independence_min", effort.independence_min, "independent after minutes", "0"),
     el("button", {type: "submit"}, "Recompute"));
}

// Independent detections by local hour, one row a species.
function activityTable(activity) {
  const species = Object.keys(activity);
  if (!species.length) return "";
  const hours = [...Array(24).keys()].map(h => String(h).padStart(2, "0"));
  return el("div", {class: "scroll"}, el("table", {id: "activity"},
    el("thead", {}, el("tr", {}, el("th", {}, "species"), hours.map(h => el("th", {}, h)))),
    el("tbody", {}, species.map(s => el("tr", {}, el("td", {}, s), hours.map(h => el("td", {}, activity[s][h] || "")))))));
}

// The detection history comes with the token, so it is fetched here and handed to the browser as a file.
async function downloadHistory(species, occasionDays) {
  try {
    const {gap_days} = effortSettings();
    const r = await fetch("/v1/deployments/history.csv?" + tablesQuery({species, occasion_days: occasionDays, gap_days}),
                          {headers: authHeaders()});
    if (!r.ok) throw new Error(((await r.json().catch(() => ({}))).error || {}).message || r.statusText);
    const a = el("a", {href: URL.createObjectURL(await r.blob()), download: `detection-history-${species}.csv`});
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) { say(`detection history: ${e.message}`); }
}

function effortView(effort) {
  if (effort.error) return el("div", {}, settingsForm(effortSettings()), el("p", {class: "problem"}, effort.error));
  const species = [...new Set(effort.trap_rates.map(r => r.species))];
  const pick = el("select", {"aria-label": "species", id: "history-species"}, species.map(s => el("option", {value: s}, s)));
  const occasion = el("input", {type: "number", min: "1", max: "366", value: "7", "aria-label": "occasion days"});
  const num = x => x === null || x === undefined ? "-" : String(x);
  return el("div", {}, settingsForm(effort),
    el("p", {class: "help"}, `Camera-days leave out stretches over ${effort.gap_days} day(s) without pictures; detections `
       + `of one species at one deployment count once per ${effort.independence_min} min.`),
    el("div", {class: "scroll"}, el("table", {id: "trap-rates"},
      el("thead", {}, el("tr", {}, ["deployment", "camera-days", "species", "independent detections", "per 100 camera-days", "nights"]
        .map(h => el("th", {}, h)))),
      el("tbody", {}, Object.entries(effort.camera_days).flatMap(([dep, days]) => {
        const rows = effort.trap_rates.filter(r => r.deploymentID === dep);
        return rows.length ? rows.map(r => el("tr", {}, el("td", {}, dep), el("td", {}, days), el("td", {}, r.species),
          el("td", {}, r.detections), el("td", {}, num(r.trap_rate)), el("td", {}, r.nights)))
          : [el("tr", {}, el("td", {}, dep), el("td", {}, days), el("td", {colspan: 4}, "no detections"))];
      })))),
    el("h3", {}, "Activity by local hour"), activityTable(effort.activity),
    species.length ? el("form", {class: "identify inline", on: {submit: ev => { ev.preventDefault(); downloadHistory(pick.value, occasion.value); }}},
      "Detection history of ", pick, " by occasions of ", occasion, " day(s) ",
      el("button", {type: "submit", id: "history-download"}, "Download CSV")) : "");
}

async function deploymentsPage(current = () => true) {
  const q = tablesQuery();
  const [[list, problem], clock, effort, form] = await Promise.all([
    orProblem(api("GET", "/v1/deployments?" + q), {deployments: [], clock_corrections: [], pictures_without_deployment: 0}),
    api("GET", "/v1/deployments/clock-problems?" + q).catch(e => ({error: e.message})),
    api("GET", "/v1/deployments/effort?" + tablesQuery(effortSettings())).catch(e => ({error: e.message})),
    depTablesForm()]);
  if (!current()) return false;

  const cameras = [...new Set([...list.deployments.map(d => d.cameraID), ...(clock.problems || []).map(p => p.camera_id)])];
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  page.replaceChildren(el("h1", {}, `Deployments (${list.deployments.length})`), form,
    el("datalist", {id: "time-zones"}, zones.map(z => el("option", {value: z}))),
    problem ? el("p", {class: "problem"}, problem) : "",
    depTable(list),
    list.pictures_without_deployment ? el("p", {class: "dropped", id: "unplaced"},
      `${list.pictures_without_deployment} picture(s) without a deployment (none, or two, cover their camera and time)`) : "",
    el("h2", {}, "Import deployments"),
    el("p", {class: "help"}, "A Camtrap DP deployments.csv or .json with a cameraID column; a later record of one deploymentID replaces it."),
    importForm(),
    el("h2", {}, "Clock problems"), problemsList(clock),
    el("h2", {}, "Clock corrections"), correctionsTable(list),
    el("h3", {}, "Give a correction"), clockForm(cameras),
    el("h2", {}, "Effort and trap rates"), effortView(effort));
  return false;
}

export const pages = {deployments: deploymentsPage};
