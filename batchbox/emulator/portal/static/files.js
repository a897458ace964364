// A file browser for a task's or a node's directory: directories open in place, files open whole in a new tab
// (served as plain text or as a download, never as HTML).
import { fill, fmtTime, getJson, h, num, table } from "./dom.js";

/**
 * @param {(path: string) => string} listUrl  the listing URL of a directory ("" is the root)
 * @param {(path: string) => string} fileUrl  the URL of one whole file
 */
export function fileBrowser(listUrl, fileUrl, { title = "Files" } = {}) {
  let path = "";
  const crumbs = h("div", { class: "crumbs" });
  const body = h("div", {});
  const element = h("section", { class: "card files" }, h("h3", {}, title), crumbs, body);

  function open(next) {
    path = next;
    update();
  }

  async function update() {
    let listing;
    try {
      listing = await getJson(listUrl(path));
    } catch (error) {
      if (error.status === 404) {
        fill(body, h("p", { class: "muted" }, "No files (yet)."));
        return;
      }
      throw error;
    }
    const parts = listing.path ? listing.path.split("/") : [];
    fill(
      crumbs,
      h("a", { href: "#", onclick: (e) => (e.preventDefault(), open("")) }, "root"),
      parts.map((part, i) => [
        " / ",
        h("a", { href: "#", onclick: (e) => (e.preventDefault(), open(parts.slice(0, i + 1).join("/"))) }, part),
      ]),
    );
    fill(
      body,
      table(
        [
          {
            title: "name",
            cell: (entry) =>
              entry.isDirectory
                ? h("a", { href: "#", onclick: (e) => (e.preventDefault(), open(entry.path)) }, `${entry.name}/`)
                : h("a", { href: fileUrl(entry.path), target: "_blank", rel: "noopener" }, entry.name),
          },
          { title: "size", class: "num", cell: (entry) => (entry.isDirectory ? "" : num(entry.size)) },
          { title: "modified", cell: (entry) => fmtTime(entry.modified) },
        ],
        listing.entries,
        { empty: "Empty directory." },
      ),
    );
  }

  return { element, update };
}
