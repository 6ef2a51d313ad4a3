// What the console keeps for the session, in one place: the token, the tables every page reads, who decides, and
// each page's kept filters. Every sessionStorage key is spelled here and nowhere else.
//
// The tables are picked as on every view of the service (`?tables=`): the console's own URL carries them too
// (`/console?tables=PATH#/cameras`), so a link or a bookmark names the tables it shows; picking other tables on any
// page rewrites that URL. "" is the service's default (the recorder's tables, or the first with pictures).

const TOKEN = "trapline-token";
const TABLES = "trapline-tables";
const WHO = "trapline-who";
const PERSON = "trapline-person";  // who the token names (GET /v1/whoami): {name, role, via}
const KEPT = "trapline-kept-";  // + a page's name: its filters

export function token() { return sessionStorage.getItem(TOKEN) || ""; }

export function setToken(value) { sessionStorage.setItem(TOKEN, value); }

export function chosenTables() { return sessionStorage.getItem(TABLES) || ""; }

// The tables picked (or "" for the service's default), kept for the session and shown in the console's URL.
export function chooseTables(path) {
  sessionStorage.setItem(TABLES, path || "");
  const url = new URL(location.href);
  if (path) url.searchParams.set("tables", path); else url.searchParams.delete("tables");
  if (url.href !== location.href) history.replaceState(history.state, "", url);
}

// A request's query with the tables picked (none: the service's default) and `extra`, empty values left out.
export function tablesQuery(extra = {}) {
  const q = new URLSearchParams();
  if (chosenTables()) q.set("tables", chosenTables());
  for (const [k, v] of Object.entries(extra)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q;
}

// The name a decision is sent with: none with a personal token (the service signs it with the token's person, and
// refuses another name from anyone but an admin), else the name typed on the people pages.
export function who() { return signedIn()?.via === "person" ? "" : sessionStorage.getItem(WHO) || ""; }

export function signedIn() { return JSON.parse(sessionStorage.getItem(PERSON) || "null"); }

export function setSignedIn(person) { sessionStorage.setItem(PERSON, JSON.stringify(person || null)); }

export function setWho(value) { sessionStorage.setItem(WHO, value || ""); }

// A page's filters, kept for the session under its `name`.
export function kept(name) { return JSON.parse(sessionStorage.getItem(KEPT + name) || "{}"); }

export function keep(name, values) { sessionStorage.setItem(KEPT + name, JSON.stringify(values)); }

// On load: `?tables=` in the console's URL is the tables picked; without it, the session's are put in the URL.
const named = new URLSearchParams(location.search).get("tables");
chooseTables(named === null ? chosenTables() : named);
