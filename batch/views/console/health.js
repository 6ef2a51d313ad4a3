// The Health page: `trapline health` for the tables picked (the checks against their thresholds, as cron mails them)
// and the season's figures per camera, over GET /v1/season/health and GET /v1/season (batch/views/season.py).

import {api, el, page} from "./api.js";
import {orProblem, peopleForm, tablesField} from "./people.js";
import {knownLocations} from "./pickers.js";
import {tablesQuery} from "./state.js";

export const nav = [["#/health", "Health", 95]];

const when = s => s === null || s === undefined ? "-" : new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");

function checksTable(report) {
  return el("div", {class: "scroll"}, el("table", {id: "health-checks"},
    el("thead", {}, el("tr", {}, ["check", "status", "value", "threshold", "detail"].map(h => el("th", {}, h)))),
    el("tbody", {}, report.checks.map(c => el("tr", {"data-check": c.name},
      el("td", {}, c.name), el("td", {}, el("span", {class: "status-" + (c.status === "ok" ? "succeeded" : c.status)}, c.status)),
      el("td", {}, c.value), el("td", {}, c.threshold), el("td", {class: "wrap"}, c.detail))))));
}

function camerasTable(season) {
  const rows = Object.entries(season.cameras).sort(([a], [b]) => a.localeCompare(b));
  return el("div", {class: "scroll"}, el("table", {id: "season-cameras"},
    el("thead", {}, el("tr", {}, ["camera", "last capture", "last committed (UTC)", "images", "failed"].map(h => el("th", {}, h)))),
    el("tbody", {}, rows.map(([cam, c]) => el("tr", {"data-camera": cam}, el("td", {}, cam),
      el("td", {}, when(c.last_capture_s)), el("td", {}, when(c.last_processed_s)), el("td", {}, c.images),
      el("td", {}, c.failed))))));
}

async function healthPage(current = () => true) {
  const q = tablesQuery();
  const [[report, problem], [season], form] = await Promise.all([
    orProblem(api("GET", "/v1/season/health?" + q), {ok: false, checks: []}),
    orProblem(api("GET", "/v1/season?" + q), {cameras: {}}),
    knownLocations().then(where => peopleForm(null, [], tablesField(where, "health-tables")))]);
  if (!current()) return false;
  const failed = report.checks.filter(c => c.status === "failed").length;
  page.replaceChildren(el("h1", {}, "Health"), form,
    problem ? el("p", {class: "problem"}, problem) : "",
    el("p", {id: "health-summary", class: failed ? "status-failed" : "status-succeeded"},
      problem ? "" : failed ? `${failed} check(s) failed` : "healthy"),
    el("p", {class: "help"}, "The checks of `trapline health` with its default thresholds; cron runs the command and mails "
      + "what it prints when one fails. Prometheus scrapes the same figures at /metrics (docs: Monitoring)."),
    checksTable(report), el("h2", {}, "Cameras"), camerasTable(season));
  return false;
}

export const pages = {health: healthPage};
