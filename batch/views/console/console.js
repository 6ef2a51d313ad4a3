// The trapline console's entry (index.html loads only this, as a module). It names no page: the service lists the
// page modules (the console/ files that export `pages`) and the style sheets (GET /console/modules.json,
// batch/views/pages.py); this loads them all, and router.js orders the nav by each link's own place. A new page is
// its module and nothing else.
// Static files over the service's own API (/v1/...): no build step, nothing loaded from elsewhere.

import {el} from "./api.js";
import {start} from "./router.js";

const listed = await fetch("/console/modules.json").then(r => r.json());
document.head.append(...listed.styles.filter(name => !document.querySelector(`link[href="/console/${name}"]`))
  .map(name => el("link", {rel: "stylesheet", href: "/console/" + name})));
start(await Promise.all(listed.pages.map(name => import("./" + name))));
