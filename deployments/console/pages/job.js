// A job's page: progress and time left, live charts (the training feed, over the full history from
// /metrics), events, logs, checkpoints, stop, resume, and its run in the Ray dashboard.
import { allPages, api, followFeed } from "../api.js";
import { StepChart } from "../charts.js";
import { ACTIVE, TERMINAL, badge, clear, errorText, fmt, h } from "../dom.js";

export async function render(main, jobId) {
  const head = h("div.card", { id: "job-status" });
  const chartBox = h("div.charts", { id: "job-charts" });
  const events = h("div.card", { id: "job-events" });
  const checkpoints = h("div.card", { id: "job-checkpoints" });
  const logs = h("div.card", { id: "job-logs" });
  const request = h("div.card", { id: "job-request" });
  main.append(h("h1", {}, "Job ", h("span.mono", { text: jobId })), head, h("div.card", {}, h("h2", { text: "Charts" }), chartBox),
    h("div.grid", {}, events, checkpoints), logs, request);

  const charts = {
    loss: new StepChart(chartBox, { id: "chart-loss", title: "Training loss", label: "loss", color: "#1f4e79" }),
    eval_loss: new StepChart(chartBox, { id: "chart-eval-loss", title: "Evaluation loss", label: "eval loss", color: "#b42318" }),
    learning_rate: new StepChart(chartBox, { id: "chart-lr", title: "Learning rate", label: "learning rate", color: "#1a7f37" }),
  };
  const dashboard = h("a", { id: "job-dashboard", target: "_blank", rel: "noopener", hidden: true, text: "Open its run in the Ray dashboard" });
  let status = null;
  let lastEval = null;

  // The status card is built once and updated in place: its buttons stay put (and keep focus) as steps arrive.
  const badgeBox = h("span");
  const percent = h("span", { id: "job-progress-text" });
  const timeLeft = h("span.muted");
  const bar = h("progress", { id: "job-progress", max: 100, value: 0, "aria-label": "Job progress" });
  const facts = h("dl.kv");
  const stop = h("button.danger", { type: "button", text: "Stop", hidden: true,
    onclick: () => act("api/stop_training?job_id=" + encodeURIComponent(jobId)) });
  const resume = h("button.secondary", { type: "button", text: "Resume", hidden: true,
    onclick: () => act(`api/jobs/${encodeURIComponent(jobId)}/resume`) });
  const actionError = h("p.error", { role: "alert" });
  head.append(h("div.row", {}, badgeBox, percent, timeLeft), bar, facts, h("div.row", {}, stop, resume, dashboard), actionError);

  function showStatus(s) {
    status = s;
    const left = s.estimated_finish ? (new Date(s.estimated_finish) - new Date()) / 1000 : null;
    clear(badgeBox, badge(s.status));
    percent.textContent = `${Math.round(s.progress)}%`;
    timeLeft.textContent = left !== null && ACTIVE.includes(s.status) ? `about ${fmt.duration(left)} left` : "";
    bar.value = s.progress;
    clear(facts, h("dt", { text: "Step" }), h("dd", { text: `${s.current_step} of ${s.total_steps || "?"}` }),
      h("dt", { text: "Epoch" }), h("dd", { text: `${fmt.number(s.current_epoch, 3)} of ${s.total_epochs}` }),
      h("dt", { text: "Loss" }), h("dd", { id: "job-loss", text: fmt.number(s.loss) }),
      h("dt", { text: "Message" }), h("dd", { text: s.message || "—" }),
      s.model_id ? [h("dt", { text: "Model" }), h("dd", {}, h("a", { id: "job-model", href: `#/models/${s.model_id}`, text: `model ${s.model_id}` }))] : null);
    stop.hidden = !ACTIVE.includes(s.status) || s.status === "stopping";
    resume.hidden = !["stopped", "failed", "interrupted"].includes(s.status);
  }

  async function act(path) {
    actionError.textContent = "";
    try { await api(path, { method: "POST" }); } catch (error) { actionError.textContent = errorText(error); }
    if (TERMINAL.includes(status?.status) || !feedOpen) follow();
  }

  function live(s) {
    if (s.current_step > 0) {
      charts.loss.add([[s.current_step, s.loss]]);
      charts.learning_rate.add([[s.current_step, s.learning_rate]]);
      if (s.eval_loss !== null && s.eval_loss !== lastEval) charts.eval_loss.add([[s.current_step, s.eval_loss]]);
      lastEval = s.eval_loss;
    }
  }

  async function history() {
    const rows = await allPages(`api/jobs/${encodeURIComponent(jobId)}/metrics`, "metrics");
    for (const [name, chart] of Object.entries(charts)) chart.add(rows.filter((r) => name in r).map((r) => [r.step, r[name]]));
  }

  async function details() {
    const id = encodeURIComponent(jobId);
    const [eventList, kept, log, detail] = await Promise.all([
      allPages(`api/jobs/${id}/events`, "events"), api(`api/jobs/${id}/checkpoints`),
      api(`api/jobs/${id}/logs?tail=200`).catch(() => ({ lines: [] })), api(`api/jobs/${id}`)]);
    clear(events, h("h2", { text: "Events" }), h("ol", {}, eventList.map((e) =>
      h("li", {}, h("span.muted", { text: `${fmt.time(e.at)} ` }), h("strong", { text: e.kind }), ` ${e.message}`))));
    clear(checkpoints, h("h2", { text: "Checkpoints" }), kept.checkpoints.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Step", "Stage", "Loss", "Saved"].map((t) => h("th", { text: t })))),
      h("tbody", {}, kept.checkpoints.map((c) => h("tr", {}, h("td", { text: c.step }), h("td", { text: c.stage }),
        h("td", { text: fmt.number(c.train_loss) }), h("td", { text: fmt.time(c.saved_at) })))))
      : h("p.muted", { text: "None kept (a completed job's model is registered instead)." }));
    clear(logs, h("h2", { text: "Logs (rank 0)" }), h("pre", { text: log.lines.join("\n") || "(no output yet)" }),
      h("button.secondary", { type: "button", text: "Refresh logs", onclick: details }));
    clear(request, h("h2", { text: "Request" }), h("dl.kv", {}, Object.entries(detail.request).map(([k, v]) =>
      [h("dt", { text: k }), h("dd.mono", { text: JSON.stringify(v) })])));
  }

  let linking = null;
  function linkDashboard() {
    linking = linking || findRun().finally(() => { linking = null; });
    return linking;
  }

  async function findRun() {
    const link = await api(`api/jobs/${encodeURIComponent(jobId)}/dashboard`).catch(() => null);
    if (link?.found || (link?.url && dashboard.hidden)) {
      dashboard.href = link.url;
      dashboard.hidden = false;
      dashboard.textContent = link.found ? "Open its run in the Ray dashboard" : "Open the Ray dashboard";
      dashboard.title = "The dashboard asks for a token: `ray get-auth-token` prints it";
    }
  }

  // Events, logs and checkpoints follow the job too: at most one refresh every 2 s while it runs.
  let detailsDue = null;
  function refreshDetails() {
    detailsDue = detailsDue || setTimeout(() => { detailsDue = null; details().catch(() => {}); }, 2000);
  }

  let close = () => {};
  let feedOpen = false;
  function follow() {
    close();
    feedOpen = true;
    close = followFeed(jobId, (s) => {
      if (s.job_id !== jobId) return;
      live(s);
      showStatus(s);
      if (s.status === "training" && !dashboard.href.includes("/tasks/")) linkDashboard();
      if (!TERMINAL.includes(s.status)) return refreshDetails();
      // The whole history once the job ended (steps the feed coalesced included); data-final says it is shown.
      Promise.all([history(), details(), linkDashboard()])
        .then(() => { chartBox.dataset.final = "true"; }).catch(() => {});
    }, () => { feedOpen = false; });
  }

  showStatus(await api(`api/training_status?job_id=${encodeURIComponent(jobId)}`));
  await history();
  follow();
  await Promise.all([details(), linkDashboard()]);
  const timer = setInterval(() => status && ACTIVE.includes(status.status) && showStatus(status), 5000);
  if (TERMINAL.includes(status.status)) chartBox.dataset.final = "true";
  return () => { close(); clearInterval(timer); clearTimeout(detailsDue); Object.values(charts).forEach((c) => c.destroy()); };
}
