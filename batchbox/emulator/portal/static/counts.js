// A job's task counts as one bar: active, running, succeeded and failed segments, with their numbers.
import { h, num } from "./dom.js";

const PARTS = ["active", "running", "succeeded", "failed"];

export function countsBar(counts) {
  const total = PARTS.reduce((sum, part) => sum + (counts[part] || 0), 0);
  const bar = h(
    "div",
    { class: "bar", title: PARTS.map((p) => `${p}: ${counts[p] || 0}`).join(", ") },
    total
      ? PARTS.filter((part) => counts[part]).map((part) =>
          h("span", { class: `seg seg-${part}`, style: `flex-grow: ${counts[part]}` }),
        )
      : h("span", { class: "seg seg-empty" }),
  );
  const legend = h(
    "div",
    { class: "bar-legend" },
    PARTS.map((part) => h("span", { class: `key key-${part}`, dataset: { count: part } }, `${part} ${num(counts[part] || 0)}`)),
  );
  return h("div", { class: "counts" }, bar, legend);
}
