// The Jobs pages: every trapline job on the cluster (however submitted) with live progress, and one job with its
// stages, options and log tail, stopped, resumed or run again from here.

import {api, el, enc, page, say, statusCell} from "./api.js";
import {route} from "./router.js";

export const nav = [["#/jobs", "Jobs", 30]];

export function bar(p) {
  if (!p || !p.images_total) return "";
  const pct = Math.min(100, Math.round(100 * p.images_done / p.images_total));
  const fill = el("span");
  fill.style.width = pct + "%";  // a property, not a style attribute: the page's CSP allows no inline styles
  return el("div", {class: "bar", title: `${pct}%`}, fill);
}

function progressText(p) {
  if (!p) return "";
  if (p.unit === "epochs") {  // a fine-tune: epoch k of n, its loss and validation top-1, the version published
    let e = `epoch ${p.images_done} of ${p.images_total}`;
    if (p.loss !== null && p.loss !== undefined) e += `, loss ${p.loss.toFixed(4)}`;
    if (p.val_top1 !== null && p.val_top1 !== undefined) e += `, val top-1 ${p.val_top1.toFixed(3)}`;
    return p.published ? `${e}, published ${p.published}` : e;
  }
  let t = `${p.images_done}/${p.images_total}`;
  if (p.images_per_s) t += `, ${p.images_per_s.toFixed(1)} images/s`;
  if (p.eta_s !== null && p.eta_s !== undefined) t += `, ETA ${Math.round(p.eta_s)} s`;
  return t;
}


async function jobsPage(current = () => true) {
  const data = await api("GET", "/v1/jobs?limit=50");
  const when = iso => iso ? iso.slice(0, 16).replace("T", " ") : "-";  // to the minute; the job page has seconds
  const rows = data.jobs.map(j => el("tr", {},
    el("td", {}, el("a", {href: "#/job/" + enc(j.id)}, j.id)), el("td", {class: "name"}, j.name || ""),
    el("td", {}, j.kind), el("td", {}, statusCell(j.status)), el("td", {}, j.model || "-"),
    el("td", {}, when(j.submitted_at)), el("td", {}, when(j.ended_at)),
    el("td", {class: "progress"}, j.status === "running" ? bar(j.progress) : "",
       progressText(j.status === "running" || (j.progress && j.progress.unit) ? j.progress : j.progress && {images_done: j.progress.images_done, images_total: j.progress.images_total}))));
  if (!current()) return false;

  page.replaceChildren(el("h1", {}, `Jobs (${data.total})`),
    el("div", {class: "scroll"}, el("table", {id: "jobs"},
      el("thead", {}, el("tr", {}, ["id", "name", "kind", "status", "model", "submitted", "ended", "images"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", {colspan: 8}, "no jobs yet"))))));
  return data.jobs.some(j => j.status === "running" || j.status === "pending");
}

async function jobPage(id, current = () => true) {
  const [job, logs] = await Promise.all([api("GET", "/v1/jobs/" + enc(id)),
                                         api("GET", "/v1/jobs/" + enc(id) + "/logs?tail=40")]);
  const p = job.progress;
  const stages = p ? Object.entries(p.stages).map(([stage, counts]) => el("tr", {},
    el("th", {}, stage), el("td", {class: "wrap"}, Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")))) : [];
  const active = job.status === "running" || job.status === "pending";
  if (!current()) return false;

  page.replaceChildren(
    el("h1", {}, `${job.kind} job `, el("span", {id: "job-id"}, job.id), " ", el("span", {id: "job-status", class: "status-" + job.status}, job.status)),
    job.name ? el("p", {id: "job-name"}, job.name) : "",
    el("div", {class: "card"},
      el("div", {}, `submitted ${job.submitted_at || "-"}, ended ${job.ended_at || "-"}, by ${job.origin}`),
      job.message ? el("div", {}, job.message) : "",
      active ? el("button", {class: "danger", id: "stop", on: {click: () => stopJob(job.id)}}, "Stop") : "",
      (job.status === "failed" || job.status === "stopped") && job.options
        ? el("button", {id: "rerun", on: {click: () => rerunJob(job)}}, job.resumes ? "Resume" : "Run again") : ""),
    el("h2", {}, "Progress"),
    p ? el("div", {class: "card"}, bar(p), el("div", {}, progressText(p), ` (run ${p.run_id}, ${p.run_status})`),
          el("div", {class: "scroll"}, el("table", {id: "stages"}, el("tbody", {}, stages))))
      : el("p", {}, "no run manifest yet"),
    el("h2", {}, "Options"), el("pre", {}, JSON.stringify(job.options, null, 2)),
    el("h2", {}, "Log (tail)"), el("pre", {id: "log"}, logs.lines.join("\n")));
  return active;
}

// A job whose command resumes (the service says so: `job.resumes`) picks up where the stopped or failed run ended.
async function rerunJob(job) {
  if (!confirm(`${job.resumes ? "Resume" : "Run again"} this ${job.kind} job with the same options?`)) return;
  try {
    const again = await api("POST", "/v1/jobs", {kind: job.kind, options: job.options, ...(job.name ? {name: job.name} : {})});
    location.hash = "#/job/" + enc(again.id);
  } catch (e) { say(e.message); }
}

async function stopJob(id) {
  if (!confirm(`Stop job ${id}? A reprocess ends at its next part.`)) return;
  try { const r = await api("POST", "/v1/jobs/" + enc(id) + "/stop"); say(`stop requested (${r.stop})`); }
  catch (e) { say(e.message); }
  route();
}

export const pages = {jobs: jobsPage, job: (current, arg) => jobPage(arg, current)};
