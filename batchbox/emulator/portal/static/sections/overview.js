// The start page: the pools and the jobs at a glance.
import { api, fill, getJson, h } from "../dom.js";
import { jobsTable } from "./jobs.js";
import { poolsTable } from "./pools.js";

function overviewView() {
  const pools = h("div", {});
  const jobs = h("div", {});
  const element = h(
    "div",
    {},
    h("section", { class: "card" }, h("h2", {}, h("a", { href: "#/pools" }, "Pools")), pools),
    h("section", { class: "card" }, h("h2", {}, h("a", { href: "#/jobs" }, "Jobs")), jobs),
  );
  return {
    element,
    async update() {
      const [poolData, jobData] = await Promise.all([getJson(api("pools")), getJson(api("jobs"))]);
      fill(pools, poolsTable(poolData.pools));
      fill(jobs, jobsTable(jobData.jobs));
    },
  };
}

export default { title: null, path: "", routes: [{ pattern: /^$/, view: overviewView }] };
