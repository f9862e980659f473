// Datasets: upload (drag and drop or the file chooser, with progress), line errors, list, preview, delete.
import { api, upload } from "../api.js";
import { clear, errorText, fmt, h } from "../dom.js";

export async function render(main) {
  const chooser = h("input", { type: "file", id: "dataset-file", accept: ".jsonl,.json,.csv,.parquet" });
  const progress = h("progress", { id: "upload-progress", max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const result = h("div", { id: "upload-result", "aria-live": "polite" });
  const drop = h("div.drop", { id: "dataset-drop" },
    h("p", { text: "Drop a dataset here (JSONL, CSV, Parquet or JSON), or choose one:" }),
    h("label", { for: "dataset-file", text: "Dataset file" }), chooser, progress);
  const list = h("div", { id: "dataset-list" }, h("p.muted", { text: "…" }));
  const preview = h("div", { id: "dataset-preview" });
  main.append(h("h1", { text: "Datasets" }), h("div.card", {}, drop, result), h("div.card", {}, h("h2", { text: "Uploaded" }), list),
    preview);

  async function send(file) {
    progress.hidden = false;
    progress.value = 0;
    clear(result, h("p.muted", { text: `Uploading ${file.name}…` }));
    try {
      const answer = await upload(file, (fraction) => { progress.value = fraction; });
      clear(result, h("p.ok", { text: `${answer.filename}: ${answer.num_examples} rows (${answer.validation.format}).` }),
        answer.message ? h("p.muted", { text: answer.message }) : null);
      await refresh();
    } catch (error) {
      const report = error.body?.validation;
      clear(result, h("p.error", { text: `${file.name} was refused: ${errorText(error)}` }), report?.errors?.length
        ? h("div.table-wrap", {}, h("table", { id: "upload-errors", "aria-label": "Errors by line" },
          h("thead", {}, h("tr", {}, h("th", { text: "Line" }), h("th", { text: "Error" }))),
          h("tbody", {}, report.errors.map((e) => h("tr", {}, h("td", { text: e.line || "whole file" }), h("td", { text: e.error }))))),
          report.total_errors > report.errors.length ? h("p.muted", { text: `${report.total_errors} errors in all.` }) : null)
        : null);
    } finally {
      progress.hidden = true;
    }
  }

  chooser.addEventListener("change", () => chooser.files[0] && send(chooser.files[0]).then(() => { chooser.value = ""; }));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) send(event.dataTransfer.files[0]);
  });

  async function show(filename) {
    const detail = await api(`api/datasets/${encodeURIComponent(filename)}?limit=5`);
    clear(preview, h("div.card", {}, h("h2", { text: `${detail.filename}: first rows` }),
      h("p.muted", { text: `${detail.num_examples} rows, ${detail.format}, ${fmt.mb(detail.size_mb)}` }),
      h("pre", { text: detail.rows.map((row) => JSON.stringify(row)).join("\n") })));
  }

  async function remove(filename) {
    if (!confirm(`Delete ${filename}?`)) return;
    try {
      await api(`api/datasets/${encodeURIComponent(filename)}`, { method: "DELETE" });
      await refresh();
    } catch (error) {
      clear(preview, h("p.error", { text: errorText(error) }));
    }
  }

  function row(d) {
    const open = () => show(d.filename).catch((error) => clear(preview, h("p.error", { text: errorText(error) })));
    return h("tr", { "data-dataset": d.filename },
      h("td", {}, h("button.secondary", { type: "button", text: d.filename, "aria-label": `Preview ${d.filename}`, onclick: open })),
      h("td", { text: d.format || "—" }), h("td", { text: d.num_examples }), h("td", { text: fmt.mb(d.size_mb) }),
      h("td.hide-narrow", { text: fmt.time(d.uploaded_at) }),
      h("td", {}, h("button.danger", { type: "button", text: "Delete", "aria-label": `Delete ${d.filename}`,
        onclick: () => remove(d.filename) })));
  }

  async function refresh() {
    const { datasets } = await api("api/datasets");
    const head = h("thead", {}, h("tr", {}, ["Name", "Format", "Rows", "Size", "Uploaded", ""]
      .map((t, i) => h(i === 4 ? "th.hide-narrow" : "th", { text: t }))));
    clear(list, datasets.length
      ? h("div.table-wrap", {}, h("table", { id: "dataset-table" }, head, h("tbody", {}, datasets.map(row))))
      : h("p.muted", { text: "No dataset yet: upload one above." }));
  }
  await refresh();
}
