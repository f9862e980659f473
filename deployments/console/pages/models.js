// Models: the registry's list, and one model's detail (base, task, strategy, training parameters,
// metrics) with rename, download and delete.
import { api, apiKey } from "../api.js";
import { clear, errorText, fmt, h } from "../dom.js";

export async function render(main, modelId) {
  return modelId ? detail(main, modelId) : list(main);
}

async function list(main) {
  const { models } = await api("api/models");
  main.append(h("h1", { text: "Models" }), h("div.card", {}, models.length ? h("div.table-wrap", {}, h("table", { id: "model-list" },
    h("thead", {}, h("tr", {}, ["Name", "Base", "Task", "Kind", "Size", "Created"].map((t, i) => h(i >= 3 ? "th.hide-narrow" : "th", { text: t })))),
    h("tbody", {}, models.map((m) => h("tr", { "data-model": m.id },
      h("td", {}, h("a", { href: `#/models/${m.id}`, text: m.name })), h("td", { text: m.base_model }), h("td", { text: m.task }),
      h("td.hide-narrow", { text: m.kind }), h("td.hide-narrow", { text: fmt.mb(m.size_mb) }),
      h("td.hide-narrow", { text: fmt.time(m.created_at) }))))))
    : h("p.muted", {}, "No model yet: a completed job registers one. ", h("a", { href: "#/new", text: "Start a job" }))));
}

// With an API key a plain link cannot send it: fetch the archive and hand the browser the bytes.
async function download(model, note) {
  const response = await fetch(`api/models/${model.id}/download`, { headers: { Authorization: `Bearer ${apiKey.get()}` } });
  if (!response.ok) { note.textContent = `Download failed (${response.status})`; return; }
  const url = URL.createObjectURL(await response.blob());
  const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "")?.[1] || `${model.name}.tar.gz`;
  const anchor = h("a", { href: url, download: name, hidden: true });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function detail(main, modelId) {
  const model = await api(`api/models/${modelId}`);
  const note = h("p", { id: "model-note", role: "status" });
  const nameInput = h("input", { id: "model-name", value: model.name, required: true });
  const rename = h("form", { id: "rename-form" }, h("label", { for: "model-name", text: "Name" }),
    h("div.row", {}, nameInput, h("button", { type: "submit", text: "Rename" })));
  rename.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const renamed = await api(`api/models/${modelId}`, { method: "PATCH", json: { name: nameInput.value.trim() } });
      title.textContent = renamed.name;
      note.className = "ok";
      note.textContent = `Renamed to ${renamed.name}.`;
    } catch (error) {
      note.className = "error";
      note.textContent = errorText(error);
    }
  });
  const downloadLink = apiKey.get()
    ? h("button.secondary", { type: "button", id: "model-download", text: "Download (.tar.gz)", onclick: () => download(model, note) })
    : h("a.button.secondary", { id: "model-download", href: `api/models/${modelId}/download`, download: "", text: "Download (.tar.gz)" });
  const remove = h("button.danger", { type: "button", text: "Delete", onclick: async () => {
    if (!confirm(`Delete ${model.name}? Its files go too.`)) return;
    try { await api(`api/models/${modelId}`, { method: "DELETE" }); location.hash = "#/models"; }
    catch (error) { note.className = "error"; note.textContent = errorText(error); }
  } });
  const title = h("span", { id: "model-title", text: model.name });
  const kv = (entries) => h("dl.kv", {}, entries.map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v ?? "—" })]));
  main.append(h("h1", {}, "Model ", title),
    h("div.card", {}, rename, note, h("div.row", {}, h("a.button", { href: `#/playground/${modelId}`, text: "Try it in the playground" }),
      downloadLink, remove)),
    h("div.grid", {},
      h("div.card", {}, h("h2", { text: "What it is" }), kv([["Base model", model.base_model], ["Task", model.task],
        ["Strategy", model.strategy], ["Provider", model.provider], ["Kind", model.kind], ["Size", fmt.mb(model.size_mb)],
        ["Created", fmt.time(model.created_at)], ["Description", model.description]])),
      h("div.card", {}, h("h2", { text: "Training parameters" }), kv(Object.entries(model.training_params || {}).map(([k, v]) => [k, String(v)]))),
      h("div.card", {}, h("h2", { text: "Metrics" }), kv(Object.entries(model.metrics || {}).map(([k, v]) => [k, fmt.number(v)])))));
}
