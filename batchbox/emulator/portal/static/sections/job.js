// One job: its state and counts, terminate / delete (with a confirmation), the timeline and the tasks table.
import { countsBar } from "../counts.js";
import { api, badge, durationBetween, facts, fill, fmtDuration, fmtTime, getJson, h, num, route, table } from "../dom.js";
import { Timeline } from "../timeline.js";

const PAGE = 50;
const FILTERS = ["", "active", "running", "completed", "succeeded", "failed"];

function taskColumns(jobId) {
  return [
    { title: "task", cell: (t) => h("a", { href: route("jobs", jobId, "tasks", t.id) }, t.id) },
    { title: "state", cell: (t) => badge(t.result === "failure" ? "failed" : t.state) },
    { title: "exit code", class: "num", cell: (t) => t.exitCode ?? "" },
    { title: "retries", class: "num", cell: (t) => num(t.retryCount ?? 0) },
    { title: "requeues", class: "num", cell: (t) => num(t.requeueCount ?? 0) },
    { title: "node", cell: (t) => (t.nodeId ? h("code", { title: t.nodeId }, t.nodeId.slice(-10)) : "") },
    { title: "started", cell: (t) => fmtTime(t.startTime) },
    { title: "ended", cell: (t) => fmtTime(t.endTime) },
    { title: "duration", class: "num", cell: (t) => (t.startTime ? fmtDuration(durationBetween(t.startTime, t.endTime)) : "") },
    {
      title: "failure",
      cell: (t) => (t.failureInfo ? h("span", { title: t.failureInfo.message || "" }, t.failureInfo.code || "") : ""),
    },
  ];
}

function tasksPanel(jobId) {
  const state = { filter: "", prefix: "", offset: 0 };
  let refresh = () => {};
  const select = h(
    "select",
    { "aria-label": "state", onchange: () => ((state.filter = select.value), (state.offset = 0), refresh()) },
    FILTERS.map((f) => h("option", { value: f }, f || "all states")),
  );
  let typing = null;
  const prefix = h("input", {
    type: "search",
    placeholder: "task id starts with…",
    "aria-label": "task id prefix",
    oninput: () => {
      clearTimeout(typing);
      typing = setTimeout(() => ((state.prefix = prefix.value.trim()), (state.offset = 0), refresh()), 200);
    },
  });
  const prev = h("button", { onclick: () => ((state.offset = Math.max(0, state.offset - PAGE)), refresh()) }, "‹ previous");
  const next = h("button", { onclick: () => ((state.offset += PAGE), refresh()) }, "next ›");
  const where = h("span", { class: "muted" });
  const body = h("div", { class: "tasks-table" });
  const element = h(
    "section",
    { class: "card" },
    h("h3", {}, "Tasks"),
    h("div", { class: "toolbar" }, select, prefix, h("span", { class: "spacer" }), where, prev, next),
    body,
  );
  async function update() {
    const data = await getJson(
      api("jobs", jobId, "tasks", { state: state.filter, prefix: state.prefix, offset: state.offset, limit: PAGE }),
    );
    if (data.total && state.offset >= data.total) {
      state.offset = Math.max(0, Math.floor((data.total - 1) / PAGE) * PAGE);
      return update();
    }
    const last = Math.min(data.total, state.offset + data.tasks.length);
    where.textContent = data.total ? `${num(state.offset + 1)}–${num(last)} of ${num(data.total)}` : "";
    prev.disabled = state.offset === 0;
    next.disabled = last >= data.total;
    fill(
      body,
      table(taskColumns(jobId), data.tasks, {
        empty: "No task matches.",
        rowClass: (t) => `task-row ${t.result === "failure" ? "failed" : ""}`,
      }),
    );
    for (const [index, row] of body.querySelectorAll("tbody tr.task-row").entries()) {
      row.dataset.task = data.tasks[index].id;
    }
  }
  refresh = () => update().catch(() => {});
  return { element, update };
}

function actions(jobId, job, ctx, onDone) {
  async function act(verb, method, path) {
    const question =
      verb === "terminate"
        ? `Terminate job ${jobId}? Its running tasks are stopped and its active tasks end unrun.`
        : `Delete job ${jobId}? Its running tasks are stopped and the job and all its tasks are removed.`;
    if (!window.confirm(question)) return;
    try {
      await getJson(path, { method });
      if (verb === "delete") ctx.navigate("#/jobs");
      else onDone();
    } catch (error) {
      window.alert(`Could not ${verb} job ${jobId}: ${error.message}`);
    }
  }
  const ended = ["completed", "terminating", "deleting"].includes(job.state);
  return h(
    "div",
    { class: "actions" },
    h("button", { class: "danger", disabled: ended, onclick: () => act("terminate", "POST", api("jobs", jobId, "terminate")) }, "Terminate"),
    h("button", { class: "danger", disabled: job.state === "deleting", onclick: () => act("delete", "DELETE", api("jobs", jobId)) }, "Delete"),
  );
}

export function jobView([jobId], ctx) {
  const head = h("div", {});
  const counts = h("div", {});
  const tasks = tasksPanel(jobId);
  const timeline = new Timeline({ onSelect: (taskId) => ctx.navigate(route("jobs", jobId, "tasks", taskId)) });
  const element = h(
    "div",
    {},
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), ` / ${jobId}`),
    h("section", { class: "card" }, h("h2", {}, `Job ${jobId}`), head, counts),
    h("section", { class: "card" }, h("h3", {}, "Timeline"), timeline.element),
    tasks.element,
  );
  let ready = false;
  async function update() {
    const [data] = await Promise.all([
      getJson(api("jobs", jobId)),
      tasks.update(),
      getJson(api("jobs", jobId, "timeline", { after: timeline.last })).then((delta) => timeline.update(delta)),
    ]);
    const job = data.job;
    fill(
      head,
      h(
        "div",
        { class: "split" },
        facts([
          ["state", badge(job.state)],
          ["pool", job.poolId ? h("a", { href: route("pools", job.poolId) }, job.poolId) : ""],
          ["created", fmtTime(job.creationTime)],
          ["started", fmtTime(job.startTime)],
          ["ended", fmtTime(job.endTime)],
          ["end reason", job.terminateReason],
          ["priority", job.priority],
          ["when all tasks complete", job.onAllTasksComplete],
        ]),
        actions(jobId, job, ctx, update),
      ),
    );
    fill(counts, countsBar(job.counts));
    if (!ready) {
      ready = true;
      performance.mark("portal:job-ready");
    }
  }
  return { element, update, dispose: () => timeline.dispose() };
}
