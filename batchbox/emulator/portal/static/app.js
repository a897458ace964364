// The portal shell: hash routes to section views, and the live refresh (short polling, no page reloads).
//
// A section module (sections/*.js, listed in sections/index.js) exports {title, path, routes}: `path` is its entry
// in the navigation bar, each route is {pattern: RegExp over the hash path, view(match, ctx)}. A view returns
// {element, update()}: `update` fetches what the view shows and patches its DOM; the shell calls it right away,
// then again every POLL_MS while the page is visible. Views never reload the page.
import { fill, h } from "./dom.js";
import sections from "./sections/index.js";

const POLL_MS = 1000;

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const status = document.getElementById("status");
const banner = document.getElementById("error");

let current = null; // {view, generation}
let generation = 0;
let timer = null;

function routes() {
  return sections.flatMap((section) => section.routes.map((r) => ({ ...r, section })));
}

function hashPath() {
  return location.hash.replace(/^#\/?/, "");
}

function showError(error) {
  if (!error) {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  const signedOut = error.status === 401 || error.status === 403;
  fill(
    banner,
    signedOut
      ? "The portal does not know this browser (any more): open the portal URL that `batchbox local up` prints."
      : `Could not refresh: ${error.message}`,
  );
}

async function refresh(expected) {
  if (!current || current.generation !== expected) return;
  try {
    await current.view.update();
    if (current && current.generation === expected) {
      showError(null);
      status.textContent = `live · ${new Date().toLocaleTimeString()}`;
      status.classList.remove("stale");
    }
  } catch (error) {
    if (current && current.generation === expected) {
      showError(error);
      status.classList.add("stale");
    }
  }
}

function schedule(expected) {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh(expected);
    if (current && current.generation === expected) schedule(expected);
  }, POLL_MS);
}

async function navigate() {
  const path = hashPath();
  let chosen = null;
  let match = null;
  for (const r of routes()) {
    match = path.match(r.pattern);
    if (match) {
      chosen = r;
      break;
    }
  }
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", Boolean(chosen) && link.dataset.section === chosen.section.path);
  }
  clearTimeout(timer);
  if (current && current.view.dispose) current.view.dispose();
  generation += 1;
  const mine = generation;
  if (!chosen) {
    current = null;
    fill(main, h("p", {}, "No such page. "), h("a", { href: "#/" }, "Back to the overview"));
    return;
  }
  const params = match.slice(1).map((part) => decodeURIComponent(part));
  const view = chosen.view(params, { navigate: (hash) => (location.hash = hash) });
  current = { view, generation: mine };
  fill(main, view.element);
  await refresh(mine);
  schedule(mine);
}

fill(
  nav,
  sections
    .filter((section) => section.title)
    .map((section) => h("a", { href: `#/${section.path}`, dataset: { section: section.path } }, section.title)),
);
window.addEventListener("hashchange", navigate);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && current) refresh(current.generation);
});
navigate();
