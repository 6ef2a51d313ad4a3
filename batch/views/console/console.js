// The trapline console's entry (index.html loads only this, as a module): every page module, in the nav's order.
// A page of its own is one module (exporting `pages` and, for a link in the nav, `nav`), imported here and named in
// the list below.
// Static files over the service's own API (/v1/...): no build step, nothing loaded from elsewhere.

import * as cameras from "./cameras.js";
import * as captures from "./captures.js";
import * as deployments from "./deployments.js";
import * as individuals from "./individuals.js";
import * as jobs from "./jobs.js";
import * as launch from "./launch.js";
import * as models from "./models.js";
import * as occurrences from "./occurrences.js";
import * as postprocess from "./postprocess.js";
import {start} from "./router.js";

start([cameras, captures, jobs, launch, postprocess, models, occurrences, individuals, deployments], "jobs");
