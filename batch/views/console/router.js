// The pages by their hash (#/NAME/ARG) and the nav built from the page modules main.js hands over: each exports
// `pages` ({NAME: (current, arg) => Promise<live?>}) and, when it has a link in the nav, `nav` ([[href, label]]).

import {el, page} from "./api.js";

const pages = {};
let fallback = null;
let timer = null;
let shown = 0;  // the newest route() call: an older one still loading must not paint over it

export async function route() {
  clearTimeout(timer);
  const call = ++shown;
  const hash = location.hash || "#/cameras";  // the pictures first (cameras.js); Jobs is one link away
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", hash.startsWith(a.getAttribute("href")));
  const [, name, arg] = hash.split("/");
  try {
    const live = await (pages[name] || fallback)(() => call === shown, decodeURIComponent(arg || ""));
    if (live && call === shown) timer = setTimeout(route, 2000);  // live progress while something runs
  } catch (e) {
    if (call === shown) page.replaceChildren(el("h1", {}, "trapline"), el("p", {}, e.message));
  }
}

// The console, once every page module is loaded: the nav in the modules' order, the token form, the first page.
export function start(modules, otherwise) {
  for (const m of modules) Object.assign(pages, m.pages);
  fallback = pages[otherwise];
  document.querySelector("header nav").replaceChildren(
    ...modules.flatMap(m => m.nav || []).map(([href, label]) => el("a", {href}, label)));
  document.getElementById("token-form").addEventListener("submit", ev => {
    ev.preventDefault();
    sessionStorage.setItem("trapline-token", document.getElementById("token").value);
    document.getElementById("token").value = "";
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}
