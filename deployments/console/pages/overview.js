// Overview: the service's health and version, the cluster, the running and queued jobs, the Ray dashboard.
import { api } from "../api.js";
import { ACTIVE, badge, clear, errorText, fmt, h } from "../dom.js";

export async function render(main) {
  const health = h("div.card", {}, h("h2", { text: "Service" }), h("p.muted", { text: "…" }));
  const cluster = h("div.card", {}, h("h2", { text: "Cluster" }), h("p.muted", { text: "…" }));
  const active = h("div.card", {}, h("h2", { text: "Running and queued jobs" }), h("p.muted", { text: "…" }));
  main.append(h("h1", { text: "Overview" }), h("div.grid", {}, health, cluster), active);

  const [status, info, resources] = await Promise.all([api("api/health"), api("api/info"), api("api/cluster")]);
  clear(health, h("h2", { text: "Service" }), h("dl.kv", {},
    h("dt", { text: "Health" }), h("dd", {}, h("span.ok", { text: status.status })),
    h("dt", { text: "Version" }), h("dd", { text: status.version }),
    h("dt", { text: "Providers" }), h("dd", { text: Object.entries(info.provider_status || {})
      .map(([name, s]) => `${name}${s.available === false ? " (unavailable)" : ""}`).join(", ") || info.providers.join(", ") }),
    h("dt", { text: "Trainable" }), h("dd", { text: `${info.supported.length} task × strategy × provider combinations` })));

  const total = resources.resources, free = resources.available;
  const dashboard = resources.dashboard_url
    ? h("p", {}, h("a", { href: resources.dashboard_url, target: "_blank", rel: "noopener", text: "Open the Ray dashboard" }),
      h("span.muted", { text: ` — it asks for a token: run \`${resources.dashboard_token_command}\` on the cluster.` }))
    : h("p.muted", { text: "No Ray dashboard runs on this cluster." });
  clear(cluster, h("h2", { text: "Cluster" }), h("dl.kv", {},
    h("dt", { text: "CPUs" }), h("dd", { text: `${free.CPU ?? 0} free of ${total.CPU ?? 0}` }),
    h("dt", { text: "GPUs" }), h("dd", { text: total.GPU ? `${free.GPU ?? 0} free of ${total.GPU}` : "none" })), dashboard);

  const refresh = async () => {
    try {
      const { jobs } = await api(`api/jobs?${ACTIVE.map((s) => `status=${s}`).join("&")}&limit=50`);
      clear(active, h("h2", { text: "Running and queued jobs" }), jobs.length
        ? h("ul", {}, jobs.map((j) => h("li", {}, h("a", { href: `#/jobs/${j.job_id}`, text: j.job_id }), " ",
          badge(j.status), ` ${j.model_name} · ${j.strategy} · `, h("progress", { max: 100, value: j.progress,
            "aria-label": `${j.job_id} progress` }), ` ${Math.round(j.progress)}%`)))
        : h("p.muted", {}, "No job runs now. ", h("a", { href: "#/new", text: "Start one" })));
    } catch (error) {
      clear(active, h("h2", { text: "Running and queued jobs" }), h("p.error", { text: errorText(error) }));
    }
  };
  await refresh();
  const timer = setInterval(refresh, 3000);
  return () => clearInterval(timer);
}
