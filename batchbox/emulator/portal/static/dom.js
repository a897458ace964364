// Small DOM and formatting helpers. Text always goes in as text (textContent / text nodes), never as HTML.

/** Build an element: h("a", {href: "#/x", class: "y", onclick: fn}, "text", child, [more]). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "style") element.style.cssText = value; // CSSOM: allowed by the page's CSP
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of an element. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A route link: link("jobs", id, "tasks", taskId) -> "#/jobs/<id>/tasks/<taskId>" (ids encoded). */
export function route(...parts) {
  return "#/" + parts.map((part) => encodeURIComponent(part)).join("/");
}

/** An API URL relative to the page: api("jobs", id, "tasks", {state: "failed"}). */
export function api(...parts) {
  let query = "";
  if (parts.length && typeof parts[parts.length - 1] === "object") {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(parts.pop())) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    query = params.toString() ? `?${params}` : "";
  }
  return "api/" + parts.map((part) => encodeURIComponent(part)).join("/") + query;
}

/** Error of an API call, with the HTTP status and the Batch error code when there is one. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GET (or another method) a portal API URL and parse the JSON answer; throws ApiError. */
export async function getJson(url, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
  if (init.method && init.method !== "GET") init.headers["X-Batchbox-Portal"] = "1";
  const response = await fetch(url, init);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.message ? body.message.value || body.message : text || response.statusText;
    throw new ApiError(response.status, body && body.code, String(message).split("\nRequestId:")[0]);
  }
  return body;
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const DATE = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** A REST time (ISO string) or seconds since the epoch as a short local time ("" when missing). */
export function fmtTime(value) {
  if (value === undefined || value === null || value === "") return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const today = new Date().toDateString() === date.toDateString();
  return today ? TIME.format(date) : `${DATE.format(date)} ${TIME.format(date)}`;
}

/** Seconds as "850 ms", "12.3 s", "4 min 05 s", "2 h 10 min". */
export function fmtDuration(seconds) {
  if (seconds === undefined || seconds === null || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
  return `${Math.floor(seconds / 3600)} h ${String(Math.round((seconds % 3600) / 60)).padStart(2, "0")} min`;
}

/** Seconds between two REST times (or to now when the end is missing). */
export function durationBetween(start, end) {
  if (!start) return null;
  const from = new Date(start).getTime();
  const to = end ? new Date(end).getTime() : Date.now();
  return Number.isFinite(from) && Number.isFinite(to) ? Math.max(0, (to - from) / 1000) : null;
}

/** A state as a coloured badge. */
export function badge(state) {
  return h("span", { class: `badge state-${String(state || "unknown").toLowerCase()}` }, state || "unknown");
}

/** A two-column list of label/value pairs (values that are null/undefined/"" are left out). */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
}

/** A table: columns = [{title, cell: (row) => node|string, class?}], rows = array. */
export function table(columns, rows, { empty = "Nothing yet.", rowClass } = {}) {
  const body = rows.length
    ? rows.map((row) =>
        h("tr", { class: rowClass ? rowClass(row) : null }, columns.map((c) => h("td", { class: c.class }, c.cell(row)))),
      )
    : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty));
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class }, c.title)))),
    h("tbody", {}, body),
  );
}

/** Numbers with thousands separators. */
export function num(value) {
  return typeof value === "number" ? value.toLocaleString() : value ?? "";
}
