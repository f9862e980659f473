// Jobs: every job, newest first, kept current by the training feed (status, progress, loss, started, duration).
import { api, followFeed } from "../api.js";
import { badge, clear, errorText, fmt, h } from "../dom.js";

export async function render(main) {
  const table = h("div.table-wrap", { id: "job-list" }, h("p.muted", { text: "…" }));
  main.append(h("h1", { text: "Jobs" }), h("div.card", {}, table, h("p", {}, h("a.button", { href: "#/new", text: "New job" }))));

  let pending = null;
  async function refresh() {
    try {
      const { jobs } = await api("api/jobs?limit=100");
      clear(table, jobs.length ? h("table", {},
        h("thead", {}, h("tr", {}, ["Job", "Status", "Progress", "Loss", "Model", "Started", "Duration"]
          .map((t, i) => h(i >= 4 ? "th.hide-narrow" : "th", { text: t })))),
        h("tbody", {}, jobs.map((j) => h("tr", { "data-job": j.job_id },
          h("td", {}, h("a", { href: `#/jobs/${j.job_id}`, text: j.job_id })), h("td", {}, badge(j.status)),
          h("td", {}, h("progress", { max: 100, value: j.progress, "aria-label": `${j.job_id} progress` }),
            ` ${Math.round(j.progress)}%`),
          h("td", { text: fmt.number(j.loss) }), h("td.hide-narrow", { text: `${j.model_name} · ${j.strategy}` }),
          h("td.hide-narrow", { text: fmt.time(j.started_at) }),
          h("td.hide-narrow", { text: fmt.since(j.started_at, j.finished_at) })))))
        : h("p.muted", {}, "No job yet. ", h("a", { href: "#/new", text: "Start one" })));
    } catch (error) {
      clear(table, h("p.error", { text: errorText(error) }));
    }
  }
  await refresh();
  // Every status change of every job arrives on the feed; a burst of steps refreshes the list once.
  const close = followFeed(null, () => { pending = pending || setTimeout(() => { pending = null; refresh(); }, 500); });
  return () => { close(); clearTimeout(pending); };
}
