// The pages by their hash (#/NAME/ARG) and the nav built from the page modules console.js hands over: each exports
// `pages` ({NAME: (current, arg) => Promise<live?>}) and, when it has a link in the nav, `nav` ([[href, label, place,
// role?]]: the links are shown by place, lowest first; a link naming a role is shown only to a person with that role
// or above, as serve/roles.py ranks them, since its page would only answer 403 to anyone else). The first link is the
// page shown when the hash names none.

import {authHeaders, el, page} from "./api.js";
import {setSignedIn, setToken, signedIn} from "./state.js";

const pages = {};
const RANKS = ["reader", "reviewer", "operator", "admin"];  // serve/roles.py's Role, lowest first (a test checks)
let links = [];
let first = "";
let timer = null;
let shown = 0;  // the newest route() call: an older one still loading must not paint over it

export async function route() {
  clearTimeout(timer);
  const call = ++shown;
  const hash = location.hash.split("/")[1] ? location.hash : first;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", hash.startsWith(a.getAttribute("href")));
  const [, name, arg] = hash.split("/");
  try {
    if (!pages[name]) throw new Error(`no page ${name} here: pick one above`);
    const live = await pages[name](() => call === shown, decodeURIComponent(arg || ""));
    if (live && call === shown) timer = setTimeout(route, 2000);  // live progress while something runs
  } catch (e) {
    if (call === shown) page.replaceChildren(el("h1", {}, "trapline"), el("p", {}, e.message));
  }
}

// Who the token names, asked of the service (GET /v1/whoami) and shown beside the token field.
async function signIn() {
  const r = await fetch("/v1/whoami", {headers: authHeaders()}).catch(() => null);
  setSignedIn(r && r.ok ? await r.json() : null);
  const me = signedIn();
  document.getElementById("signed-in").textContent = me ? `${me.name} (${me.role})` : "not signed in";
  showNav(me);
}

// The nav links `me` may follow (no one signed in: those that need no role).
function showNav(me) {
  const rank = me ? RANKS.indexOf(me.role) : -1;
  const allowed = links.filter(([, , , role]) => !role || (RANKS.includes(role) && rank >= RANKS.indexOf(role)));
  first = allowed.length ? allowed[0][0] : "";
  document.querySelector("header nav").replaceChildren(...allowed.map(([href, label]) => el("a", {href}, label)));
}

// The console, once every page module is loaded: the nav by its links' places, the token form, the first page.
export async function start(modules) {
  for (const m of modules) Object.assign(pages, m.pages);
  links = modules.flatMap(m => m.nav || []).sort((a, b) => a[2] - b[2] || a[1].localeCompare(b[1]));
  document.getElementById("token-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    setToken(document.getElementById("token").value);
    document.getElementById("token").value = "";
    await signIn();
    route();
  });
  window.addEventListener("hashchange", route);
  await signIn();
  route();
}
