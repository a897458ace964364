// A job's timeline on a canvas: one row per node slot, one bar per task run (retries and requeues are runs of
// their own), time on the x axis. The page keeps every run it has seen and asks the server only for new ones
// (`?after=<last run id>`); a redraw is a few path fills, so 10,000 runs stay cheap. Hovering a bar tells what it
// is, clicking it opens the task.
import { fill, fmtDuration, fmtTime, h, num } from "./dom.js";

const COLORS = {
  succeeded: "#2f9e5b",
  failed: "#d6453d",
  retried: "#f0922b",
  requeued: "#8a63d2",
  terminated: "#7d8591",
  running: "#3b7dd8",
};
const LABEL_WIDTH = 120;
const AXIS_HEIGHT = 20;
const MAX_HEIGHT = 520;

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 5, 10]) if (raw <= factor * power) return factor * power;
  return 10 * power;
}

export class Timeline {
  constructor({ onSelect } = {}) {
    this.onSelect = onSelect;
    this.last = 0;
    this.ended = [];
    this.running = [];
    this.nodes = [];
    this.slots = 1;
    this.now = Date.now() / 1000;
    this.t0 = this.now - 60;
    this.t1 = this.now;
    this.rows = [];
    this.legend = h("div", { class: "legend" });
    this.canvas = h("canvas", { class: "timeline-canvas", role: "img", "aria-label": "timeline of task runs" });
    this.canvas.timeline = this;
    this.tooltip = h("div", { class: "tooltip", hidden: true });
    this.empty = h("p", { class: "muted" }, "No task has run yet.");
    this.scroller = h("div", { class: "timeline-scroll" }, this.canvas);
    this.element = h("div", { class: "timeline" }, this.legend, this.empty, this.scroller, this.tooltip);
    this.canvas.addEventListener("mousemove", (event) => this.hover(event));
    this.canvas.addEventListener("mouseleave", () => (this.tooltip.hidden = true));
    this.canvas.addEventListener("click", (event) => {
      const run = this.runAt(event);
      if (run && this.onSelect) this.onSelect(run.task);
    });
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.scroller);
  }

  dispose() {
    this.resize.disconnect();
  }

  /** Merge one answer of the timeline endpoint, lay the runs out and draw them. */
  update(delta) {
    const toRuns = (columns) =>
      columns.task.map((task, i) => ({
        task,
        node: columns.node[i] >= 0 ? delta.nodeIds[columns.node[i]] : "(unknown node)",
        start: columns.start[i] ?? columns.end[i] ?? delta.now,
        end: columns.end[i],
        outcome: delta.outcomes[columns.outcome[i]],
        exit: columns.exit[i],
      }));
    if (delta.last > this.last) this.ended.push(...toRuns(delta.ended));
    this.last = Math.max(this.last, delta.last);
    this.running = toRuns(delta.running);
    this.nodes = delta.nodes;
    this.slots = delta.slotsPerNode;
    this.now = delta.now;
    this.layout();
    this.draw();
  }

  /** Every run with the row it is drawn on (what the page shows, for a reader or a test). */
  bars() {
    return this.rows.flatMap((row, index) =>
      row.runs.map((run) => ({ task: run.task, node: run.node, row: index, outcome: run.outcome, start: run.start, end: run.end })),
    );
  }

  layout() {
    const byNode = new Map(this.nodes.map((node) => [node.id, []]));
    const all = this.ended.concat(this.running);
    for (const run of all) {
      if (!byNode.has(run.node)) byNode.set(run.node, []);
      byNode.get(run.node).push(run);
    }
    this.rows = [];
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const [node, runs] of byNode) {
      runs.sort((a, b) => a.start - b.start);
      const laneEnds = [];
      const lanes = [];
      for (const run of runs) {
        const end = run.end ?? this.now;
        let lane = laneEnds.findIndex((laneEnd) => laneEnd <= run.start + 0.0005);
        if (lane < 0) {
          lane = laneEnds.length;
          laneEnds.push(end);
          lanes.push([]);
        } else {
          laneEnds[lane] = end;
        }
        lanes[lane].push(run);
        t0 = Math.min(t0, run.start);
        t1 = Math.max(t1, end);
      }
      const count = Math.max(this.slots, lanes.length);
      for (let slot = 0; slot < count; slot += 1) this.rows.push({ node, slot, runs: lanes[slot] || [] });
    }
    if (!Number.isFinite(t0)) [t0, t1] = [this.now - 60, this.now];
    if (t1 - t0 < 1) t1 = t0 + 1;
    this.t0 = t0;
    this.t1 = t1;
    const counts = {};
    for (const run of all) counts[run.outcome] = (counts[run.outcome] || 0) + 1;
    this.empty.hidden = all.length > 0;
    fill(
      this.legend,
      Object.keys(COLORS).map((name) =>
        h(
          "span",
          { class: "key", dataset: { outcome: name } },
          h("i", { style: `background:${COLORS[name]}` }),
          `${name} ${num(counts[name] || 0)}`,
        ),
      ),
      h("span", { class: "muted" }, `${num(all.length)} runs on ${num(this.rows.length)} node slots`),
    );
  }

  rowHeight() {
    return Math.max(4, Math.min(18, Math.floor((MAX_HEIGHT - AXIS_HEIGHT) / Math.max(1, this.rows.length))));
  }

  x(t, width) {
    return LABEL_WIDTH + ((t - this.t0) / (this.t1 - this.t0)) * (width - LABEL_WIDTH - 8);
  }

  draw() {
    const width = Math.max(320, this.scroller.clientWidth || 900);
    const rowHeight = this.rowHeight();
    const height = AXIS_HEIGHT + this.rows.length * rowHeight + 2;
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    // node bands and labels
    let previous = null;
    let band = false;
    this.rows.forEach((row, index) => {
      const y = AXIS_HEIGHT + index * rowHeight;
      if (row.node !== previous) {
        band = !band;
        previous = row.node;
        ctx.fillStyle = "#d5d9e0";
        ctx.fillRect(0, y, width, 1);
        if (rowHeight >= 9) {
          ctx.fillStyle = "#39404d";
          ctx.fillText(row.node.length > 16 ? `…${row.node.slice(-14)}` : row.node, 4, y + rowHeight / 2);
        }
      }
      if (band) {
        ctx.fillStyle = "rgba(60, 80, 120, 0.05)";
        ctx.fillRect(LABEL_WIDTH, y, width - LABEL_WIDTH, rowHeight);
      }
    });
    // time axis
    const span = this.t1 - this.t0;
    const step = niceStep(span, Math.max(2, Math.floor((width - LABEL_WIDTH) / 110)));
    const relative = span < 120;
    ctx.fillStyle = "#6b7280";
    for (let t = relative ? this.t0 : Math.ceil(this.t0 / step) * step; t <= this.t1; t += step) {
      const x = this.x(t, width);
      ctx.fillRect(x, AXIS_HEIGHT - 4, 1, height - AXIS_HEIGHT + 4);
      const label = t === this.t0 ? "0 s" : `+${fmtDuration(t - this.t0)}`;
      ctx.fillText(relative ? label : fmtTime(t), x + 3, AXIS_HEIGHT / 2);
    }
    // bars, one path per outcome
    const gap = rowHeight >= 8 ? 1 : 0;
    for (const [outcome, color] of Object.entries(COLORS)) {
      ctx.beginPath();
      this.rows.forEach((row, index) => {
        const y = AXIS_HEIGHT + index * rowHeight + gap;
        for (const run of row.runs) {
          if (run.outcome !== outcome) continue;
          const left = this.x(run.start, width);
          const length = this.x(run.end ?? this.now, width) - left;
          ctx.rect(left, y, Math.max(1, length >= 4 ? length - 1 : length), rowHeight - 2 * gap); // 1px between runs
        }
      });
      ctx.fillStyle = color;
      ctx.fill();
    }
    this.width = width;
  }

  runAt(event) {
    const box = this.canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    const row = this.rows[Math.floor((y - AXIS_HEIGHT) / this.rowHeight())];
    if (!row || x < LABEL_WIDTH) return null;
    const perPixel = (this.t1 - this.t0) / (this.width - LABEL_WIDTH - 8);
    const t = this.t0 + (x - LABEL_WIDTH) * perPixel;
    let low = 0;
    let high = row.runs.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (row.runs[mid].start <= t + perPixel) {
        found = mid;
        low = mid + 1;
      } else high = mid - 1;
    }
    const run = found >= 0 ? row.runs[found] : null;
    return run && (run.end ?? this.now) >= t - perPixel ? run : null;
  }

  hover(event) {
    const run = this.runAt(event);
    this.canvas.style.cursor = run ? "pointer" : "default";
    if (!run) {
      this.tooltip.hidden = true;
      return;
    }
    const end = run.end ?? this.now;
    fill(
      this.tooltip,
      h("strong", {}, run.task),
      ` ${run.outcome}`,
      run.exit !== null && run.exit !== undefined ? ` (exit ${run.exit})` : "",
      h("br"),
      `${fmtTime(run.start)} → ${run.end ? fmtTime(run.end) : "now"} · ${fmtDuration(end - run.start)}`,
      h("br"),
      h("span", { class: "muted" }, run.node),
    );
    this.tooltip.hidden = false;
    const box = this.element.getBoundingClientRect();
    this.tooltip.style.left = `${Math.min(event.clientX - box.left + 12, box.width - 260)}px`;
    this.tooltip.style.top = `${event.clientY - box.top + 12}px`;
  }
}
