// Playground: pick a model, give the input its task reads, set sampling, and watch the answer stream in;
// optionally the base model's answer to the same input beside it.
import { api, generateStream } from "../api.js";
import { clear, errorText, h } from "../dom.js";

const QA = "extractive-question-answering";

function numberField(id, label, value, min, max, step, help) {
  return h("div.field", {}, h("label", { for: id, text: label }),
    h("input", { id, type: "number", value, min, max, step, "aria-describedby": `${id}-help` }),
    h("p.help", { id: `${id}-help`, text: help }));
}

export async function render(main, modelId) {
  const { models } = await api("api/models");
  main.append(h("h1", { text: "Playground" }));
  if (!models.length) {
    main.append(h("p.muted", {}, "No trained model yet. ", h("a", { href: "#/new", text: "Start a job" })));
    return;
  }
  const select = h("select", { id: "pg-model" }, models.map((m) =>
    h("option", { value: m.id, text: `${m.name} (${m.task})`, selected: String(m.id) === modelId })));
  const inputs = h("div", { id: "pg-inputs" });
  const compare = h("input", { id: "pg-compare", type: "checkbox" });
  const compareLabel = h("label.check", { for: "pg-compare" }, compare, "Also ask the base model (side by side)");
  const answer = h("div.answer", { id: "pg-answer", "aria-live": "polite", "aria-busy": "false" });
  const baseAnswer = h("div.answer", { id: "pg-base-answer", "aria-live": "polite" });
  const baseBox = h("div", { hidden: true }, h("h2", { text: "Base model" }), baseAnswer);
  const stats = h("p.muted", { id: "pg-stats" });
  const error = h("p.error", { id: "pg-error", role: "alert" });
  const go = h("button", { type: "submit", id: "pg-generate", text: "Generate" });
  const stop = h("button.secondary", { type: "button", text: "Stop", disabled: true });
  const form = h("form.card", { id: "pg-form" },
    h("label", { for: "pg-model", text: "Model" }), select, inputs,
    h("div.fields", {},
      numberField("pg-temperature", "Temperature", 0.7, 0, 2, 0.05, "0 is greedy (the same answer every time)."),
      numberField("pg-top-p", "Top-p", 0.9, 0.01, 1, 0.01, "Sample from the smallest set of tokens this likely."),
      numberField("pg-max-tokens", "Max new tokens", 100, 1, 1024, 1, "The longest answer, in tokens.")),
    compareLabel, error, h("div.row", {}, go, stop));
  main.append(form, h("div.answers", {}, h("div", {}, h("h2", { text: "Answer" }), answer, stats), baseBox));

  const model = () => models.find((m) => String(m.id) === select.value);
  function taskInputs() {
    const m = model();
    const area = (id, label, placeholder) => [h("label", { for: id, text: label }), h("textarea", { id, placeholder, required: true })];
    clear(inputs, m.task === QA
      ? [...area("pg-context", "Context (the passage to answer from)", ""), ...area("pg-question", "Question", "")]
      : m.task === "summarization" ? area("pg-prompt", "Text to summarize", "")
        : area("pg-prompt", "Prompt", "What is 3 plus 4?"));
    compare.disabled = m.kind === "merged";
    compareLabel.title = m.kind === "merged" ? "A merged model has no separate base to ask" : "";
  }
  select.addEventListener("change", taskInputs);
  taskInputs();

  let controller = null;
  stop.addEventListener("click", () => controller?.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const m = model();
    const value = (id) => form.querySelector(`#${id}`)?.value.trim() || undefined;
    const body = {
      model_id: m.id, prompt: value("pg-prompt"), context: value("pg-context"), question: value("pg-question"),
      temperature: parseFloat(value("pg-temperature")), top_p: parseFloat(value("pg-top-p")),
      max_new_tokens: parseInt(value("pg-max-tokens"), 10),
    };
    controller = new AbortController();
    go.disabled = true; stop.disabled = false; error.textContent = ""; stats.textContent = "";
    answer.textContent = ""; baseAnswer.textContent = "";
    answer.setAttribute("aria-busy", "true");
    answer.dataset.state = "streaming";
    baseBox.hidden = !compare.checked;
    try {
      const done = await generateStream(body, (text) => answer.append(text), controller.signal);
      answer.dataset.state = "done";
      stats.textContent = `${done.tokens_generated} tokens in ${Math.round(done.generation_time_ms)} ms` +
        (done.score !== null ? ` · span probability ${done.score.toFixed(3)}` : "") + (done.prompt_truncated ? " · prompt truncated" : "");
      if (compare.checked && !compare.disabled) {
        baseAnswer.dataset.state = "streaming";
        await generateStream({ ...body, use_base: true }, (text) => baseAnswer.append(text), controller.signal);
        baseAnswer.dataset.state = "done";
      }
    } catch (failure) {
      answer.dataset.state = "error";
      error.textContent = failure.name === "AbortError" ? "Stopped." : errorText(failure);
    } finally {
      go.disabled = false; stop.disabled = true;
      answer.setAttribute("aria-busy", "false");
    }
  });
  return () => controller?.abort();
}
