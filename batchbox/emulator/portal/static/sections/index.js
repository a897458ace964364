// The portal's sections, in navigation order. A new section is one module here (job schedules, applications...).
import jobs from "./jobs.js";
import overview from "./overview.js";
import pools from "./pools.js";

export default [overview, pools, jobs];
