// One task: what it runs (secrets masked), every run it had, the end of its stdout and stderr, and its files.
import { api, badge, facts, fill, fmtDuration, fmtTime, getJson, h, num, route, table } from "../dom.js";
import { fileBrowser } from "../files.js";

const OUTPUTS = ["stdout.txt", "stderr.txt"];

function outputPanel(jobId, taskId, name) {
  const info = h("span", { class: "muted" });
  const text = h("pre", { class: "output", dataset: { file: name } });
  const element = h(
    "section",
    { class: "card output-card" },
    h(
      "h3",
      {},
      name,
      " ",
      info,
      " ",
      h("a", { href: api("jobs", jobId, "tasks", taskId, "file", { path: name }), target: "_blank", rel: "noopener" }, "whole file"),
    ),
    text,
  );
  async function update() {
    const data = await getJson(api("jobs", jobId, "tasks", taskId, "tail", { path: name }));
    info.textContent = data.exists ? `${num(data.size)} bytes${data.truncated ? ", last 64 KiB shown" : ""}` : "(no file yet)";
    if (text.textContent !== data.text) {
      const atBottom = text.scrollTop + text.clientHeight >= text.scrollHeight - 4;
      text.textContent = data.text; // text, never HTML
      if (atBottom) text.scrollTop = text.scrollHeight;
    }
  }
  return { element, update };
}

function failure(info) {
  if (!info) return null;
  const details = (info.details || []).map((d) => `${d.name}: ${d.value}`).join("; ");
  return `${info.category || ""} ${info.code || ""}: ${info.message || ""}${details ? ` (${details})` : ""}`;
}

function resourceFiles(files) {
  if (!files || !files.length) return null;
  return h(
    "ul",
    { class: "plain" },
    files.map((f) =>
      h("li", {}, h("code", {}, f.httpUrl || f.storageContainerUrl || f.autoStorageContainerName || ""), f.filePath ? ` → ${f.filePath}` : ""),
    ),
  );
}

export function taskView([jobId, taskId]) {
  const head = h("div", {});
  const runs = h("div", {});
  const outputs = OUTPUTS.map((name) => outputPanel(jobId, taskId, name));
  const files = fileBrowser(
    (path) => api("jobs", jobId, "tasks", taskId, "files", { path }),
    (path) => api("jobs", jobId, "tasks", taskId, "file", { path }),
  );
  const element = h(
    "div",
    {},
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", h("a", { href: route("jobs", jobId) }, jobId), ` / ${taskId}`),
    h("section", { class: "card" }, h("h2", {}, `Task ${taskId}`), head),
    h("section", { class: "card" }, h("h3", {}, "Runs"), runs),
    h("div", { class: "outputs" }, outputs.map((o) => o.element)),
    files.element,
  );
  async function update() {
    const data = await getJson(api("jobs", jobId, "tasks", taskId));
    const task = data.task;
    const info = task.executionInfo || {};
    const node = task.nodeInfo || {};
    fill(
      head,
      facts([
        ["state", badge(info.result === "failure" ? "failed" : task.state)],
        ["exit code", info.exitCode],
        ["failure", failure(info.failureInfo)],
        ["command line", h("code", { class: "command" }, task.commandLine || "")],
        ["resource files", resourceFiles(task.resourceFiles)],
        ["retries / requeues", `${info.retryCount ?? 0} / ${info.requeueCount ?? 0}`],
        ["max retries", task.constraints ? task.constraints.maxTaskRetryCount : null],
        ["node", node.nodeId ? h("a", { href: route("pools", node.poolId, "nodes", node.nodeId, "files") }, node.nodeId) : null],
        ["started", fmtTime(info.startTime)],
        ["ended", fmtTime(info.endTime)],
        ["created", fmtTime(task.creationTime)],
      ]),
    );
    fill(
      runs,
      table(
        [
          { title: "#", class: "num", cell: (r) => String(data.runs.indexOf(r) + 1) },
          { title: "outcome", cell: (r) => badge(r.outcome) },
          { title: "exit code", class: "num", cell: (r) => r.exitCode ?? "" },
          { title: "node", cell: (r) => (r.nodeId ? h("code", {}, r.nodeId) : "") },
          { title: "started", cell: (r) => fmtTime(r.start) },
          { title: "ended", cell: (r) => (r.end ? fmtTime(r.end) : "") },
          { title: "duration", class: "num", cell: (r) => (r.start ? fmtDuration((r.end ?? Date.now() / 1000) - r.start) : "") },
        ],
        data.runs,
        { empty: "Not run yet." },
      ),
    );
    await Promise.all([...outputs.map((o) => o.update()), files.update()]);
  }
  return { element, update };
}
