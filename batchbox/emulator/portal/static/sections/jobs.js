// Jobs: every job with its task counts; a job (counts, timeline, tasks, terminate/delete); a task.
import { countsBar } from "../counts.js";
import { api, badge, fill, fmtTime, getJson, h, route, table } from "../dom.js";
import { jobView } from "./job.js";
import { taskView } from "./task.js";

/** The jobs table (also used by the overview). */
export function jobsTable(jobs) {
  return table(
    [
      { title: "job", cell: (j) => h("a", { href: route("jobs", j.id) }, j.id) },
      { title: "state", cell: (j) => badge(j.state) },
      { title: "pool", cell: (j) => (j.poolId ? h("a", { href: route("pools", j.poolId) }, j.poolId) : "") },
      { title: "tasks", class: "wide", cell: (j) => countsBar(j.counts) },
      { title: "created", cell: (j) => fmtTime(j.creationTime) },
      { title: "ended", cell: (j) => fmtTime(j.endTime) },
    ],
    jobs,
    { empty: "No jobs." },
  );
}

function jobsView() {
  const body = h("div", {});
  const element = h("section", { class: "card" }, h("h2", {}, "Jobs"), body);
  return {
    element,
    async update() {
      const data = await getJson(api("jobs"));
      fill(body, jobsTable(data.jobs));
    },
  };
}

export default {
  title: "Jobs",
  path: "jobs",
  routes: [
    { pattern: /^jobs$/, view: jobsView },
    { pattern: /^jobs\/([^/]+)$/, view: jobView },
    { pattern: /^jobs\/([^/]+)\/tasks\/([^/]+)$/, view: taskView },
  ],
};
