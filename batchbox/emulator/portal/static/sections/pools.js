// Pools: every pool with its sizes and nodes by state; a pool with its nodes; a node's files.
import { fileBrowser } from "../files.js";
import { api, badge, facts, fill, fmtTime, getJson, h, num, route, table } from "../dom.js";

function nodeStates(pool) {
  const entries = Object.entries(pool.nodeStates || {});
  return entries.length ? entries.map(([state, n]) => h("span", { class: "chip" }, `${state} ${n}`)) : "no nodes";
}

function sizes(pool) {
  const dedicated = `${pool.currentDedicatedNodes ?? 0}/${pool.targetDedicatedNodes ?? 0}`;
  const spot = `${pool.currentLowPriorityNodes ?? 0}/${pool.targetLowPriorityNodes ?? 0}`;
  return `${dedicated} dedicated · ${spot} spot`;
}

function autoscale(pool) {
  if (!pool.enableAutoScale) return null;
  const run = pool.autoScaleRun;
  return h(
    "div",
    { class: "autoscale" },
    h("pre", { class: "code" }, pool.autoScaleFormula || ""),
    run
      ? h(
          "p",
          { class: "muted" },
          `last evaluation ${fmtTime(run.timestamp)}: ${run.results || ""}`,
          run.error ? ` error: ${run.error.code || ""} ${run.error.message || ""}` : "",
        )
      : h("p", { class: "muted" }, "not evaluated yet"),
  );
}

/** The pools table (also used by the overview). */
export function poolsTable(pools) {
  return table(
    [
      { title: "pool", cell: (p) => h("a", { href: route("pools", p.id) }, p.id) },
      { title: "state", cell: (p) => [badge(p.state), " ", badge(p.allocationState)] },
      { title: "nodes (current/target)", cell: sizes },
      { title: "node states", cell: nodeStates },
      { title: "VM size", cell: (p) => p.vmSize || "" },
      { title: "slots/node", class: "num", cell: (p) => num(p.taskSlotsPerNode) },
      { title: "autoscale", cell: (p) => (p.enableAutoScale ? "on" : "") },
    ],
    pools,
    { empty: "No pools." },
  );
}

function poolsView() {
  const body = h("div", {});
  const element = h("section", { class: "card" }, h("h2", {}, "Pools"), body);
  return {
    element,
    async update() {
      const data = await getJson(api("pools"));
      fill(body, poolsTable(data.pools));
    },
  };
}

function startTask(node) {
  const info = node.startTaskInfo;
  if (!info) return node.startTaskCommandLine ? "pending" : "";
  const failure = info.failureInfo ? ` (${info.failureInfo.code})` : "";
  const code = info.exitCode !== undefined ? ` exit ${info.exitCode}` : "";
  return `${info.state || ""}${info.result ? ` ${info.result}` : ""}${code}${failure}`;
}

function poolView([poolId]) {
  const head = h("div", {});
  const nodes = h("div", {});
  const element = h(
    "div",
    {},
    h("p", { class: "crumbs" }, h("a", { href: "#/pools" }, "Pools"), ` / ${poolId}`),
    h("section", { class: "card" }, h("h2", {}, `Pool ${poolId}`), head),
    h("section", { class: "card" }, h("h3", {}, "Nodes"), nodes),
  );
  return {
    element,
    async update() {
      const data = await getJson(api("pools", poolId));
      const pool = data.pool;
      fill(
        head,
        facts([
          ["state", h("span", {}, badge(pool.state), " ", badge(pool.allocationState))],
          ["nodes", sizes(pool)],
          ["VM size", pool.vmSize],
          ["task slots per node", num(pool.taskSlotsPerNode)],
          ["created", fmtTime(pool.creationTime)],
          ["autoscale", autoscale(pool)],
          ["resize errors", (pool.resizeErrors || []).map((e) => `${e.code}: ${e.message}`).join("; ")],
        ]),
      );
      fill(
        nodes,
        table(
          [
            { title: "node", cell: (n) => h("code", {}, n.id) },
            { title: "state", cell: (n) => badge(n.state) },
            { title: "running tasks", class: "num", cell: (n) => num(n.runningTasksCount ?? 0) },
            { title: "tasks run", class: "num", cell: (n) => num(n.totalTasksRun ?? 0) },
            { title: "succeeded", class: "num", cell: (n) => num(n.totalTasksSucceeded ?? 0) },
            { title: "start task", cell: startTask },
            { title: "kind", cell: (n) => (n.isDedicated === false ? "spot" : "dedicated") },
            { title: "", cell: (n) => h("a", { href: route("pools", poolId, "nodes", n.id, "files") }, "files") },
          ],
          data.nodes,
          { empty: "No nodes." },
        ),
      );
    },
  };
}

function nodeFilesView([poolId, nodeId]) {
  const browser = fileBrowser(
    (path) => api("pools", poolId, "nodes", nodeId, "files", { path }),
    (path) => api("pools", poolId, "nodes", nodeId, "file", { path }),
    { title: `Files of node ${nodeId}` },
  );
  const element = h(
    "div",
    {},
    h("p", { class: "crumbs" }, h("a", { href: "#/pools" }, "Pools"), " / ", h("a", { href: route("pools", poolId) }, poolId), ` / ${nodeId}`),
    browser.element,
  );
  return { element, update: browser.update };
}

export default {
  title: "Pools",
  path: "pools",
  routes: [
    { pattern: /^pools$/, view: poolsView },
    { pattern: /^pools\/([^/]+)$/, view: poolView },
    { pattern: /^pools\/([^/]+)\/nodes\/([^/]+)\/files$/, view: nodeFilesView },
  ],
};
