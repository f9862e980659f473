// The console: a hash router over the pages, the API key prompt, and the notice line.
import { api, apiKey, setUnauthorizedHandler } from "./api.js";
import { clear, errorText, h } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as datasets from "./pages/datasets.js";
import * as newJob from "./pages/new_job.js";
import * as jobs from "./pages/jobs.js";
import * as job from "./pages/job.js";
import * as models from "./pages/models.js";
import * as playground from "./pages/playground.js";

// "#/jobs/train_1a2b" -> the job page with {id: "train_1a2b"}.
const ROUTES = [
  [/^#?\/?$/, overview], [/^#\/datasets$/, datasets], [/^#\/new$/, newJob], [/^#\/jobs$/, jobs],
  [/^#\/jobs\/([^/]+)$/, job], [/^#\/models$/, models], [/^#\/models\/(\d+)$/, models],
  [/^#\/playground$/, playground], [/^#\/playground\/(\d+)$/, playground],
];

const main = document.getElementById("main");
const notice = document.getElementById("notice");
let leave = () => {};

export function showNotice(text) {
  notice.textContent = text;
  notice.hidden = !text;
}

function route() {
  leave();
  leave = () => {};
  showNotice("");
  const hash = location.hash || "#/";
  for (const link of document.querySelectorAll("header nav a")) {
    const target = link.getAttribute("href");
    const current = target === "#/" ? hash === "#/" : hash.startsWith(target);
    current ? link.setAttribute("aria-current", "page") : link.removeAttribute("aria-current");
  }
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(hash);
    if (match) {
      clear(main);
      const cleanup = page.render(main, match[1] ? decodeURIComponent(match[1]) : undefined);
      // A page may return its cleanup (close a socket, stop a timer) directly or from a promise.
      Promise.resolve(cleanup).then((fn) => { if (typeof fn === "function") leave = fn; })
        .catch((error) => { if (error.status !== 401) showNotice(errorText(error)); });
      return;
    }
  }
  clear(main, h("h1", { text: "Not found" }), h("p", {}, "No page here. ", h("a", { href: "#/", text: "Overview" })));
}

// The key prompt: a 401 anywhere opens it; a key that the service refuses again says so.
const dialog = document.getElementById("key-dialog");
const keyError = document.getElementById("key-error");
setUnauthorizedHandler((usedKey) => {
  if (usedKey) {
    if (apiKey.get() === usedKey) apiKey.clear();
    keyError.textContent = "The service refused that key. Check FORGE_API_KEY and try again.";
    showNotice("Wrong API key: the service refused it.");
  } else if (!keyError.textContent) {
    showNotice("This service needs an API key.");
  }
  if (!dialog.open) dialog.showModal();
});
document.getElementById("key-form").addEventListener("submit", () => {
  const input = document.getElementById("key-input");
  apiKey.set(input.value.trim());
  input.value = "";
  keyError.textContent = "";
  route();
});

window.addEventListener("hashchange", route);
// Say so when the service cannot be reached at all, rather than leave a blank page.
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  if (event.reason?.status !== 401) showNotice(`Something failed: ${errorText(event.reason)}`);
});
api("api/health").catch(() => showNotice("The service does not answer; is `make serve` running?"));
route();
