// New job: a form built from GET /api/info (what trains) and the OpenAPI schema (every request field,
// its default, range and description). Only supported task × strategy × provider combinations can be
// chosen; a 400 is shown next to the field it names.
import { api } from "../api.js";
import { clear, errorText, h } from "../dom.js";

// Shown first, in this order; every other field of the request goes under "Advanced".
const COMMON = ["task", "strategy", "provider", "model_name", "dataset", "num_train_epochs", "max_steps",
  "learning_rate", "per_device_train_batch_size", "eval_split"];
const COMBO = ["task", "strategy", "provider"];

function resolveSchema(schema, spec) {
  // `Optional[X]` is anyOf [X, null]; `$ref`s point into components.
  const ref = (s) => (s && s.$ref ? spec.components.schemas[s.$ref.split("/").pop()] : s);
  const variants = (schema.anyOf || [schema]).map(ref).filter((s) => s.type !== "null");
  return { ...schema, ...variants[0], nullable: Boolean(schema.anyOf), default: schema.default };
}

function rangeText(s) {
  const low = s.minimum ?? (s.exclusiveMinimum !== undefined ? `>${s.exclusiveMinimum}` : undefined);
  const high = s.maximum ?? (s.exclusiveMaximum !== undefined ? `<${s.exclusiveMaximum}` : undefined);
  const parts = [];
  if (low !== undefined && high !== undefined) parts.push(`range ${low} … ${high}`);
  else if (low !== undefined) parts.push(`at least ${low}`);
  else if (high !== undefined) parts.push(`at most ${high}`);
  if (s.default !== undefined && s.default !== null) parts.push(`default ${s.default}`);
  else if (s.nullable) parts.push("optional");
  return parts.join("; ");
}

function control(name, s) {
  const id = `field-${name}`;
  const common = { id, name, "aria-describedby": `help-${name} error-${name}` };
  if (s.enum) {
    return h("select", common, s.nullable ? h("option", { value: "", text: "(none)" }) : null,
      s.enum.map((v) => h("option", { value: v, text: v, selected: v === s.default })));
  }
  if (s.type === "boolean") return h("input", { ...common, type: "checkbox", checked: Boolean(s.default) });
  if (s.type === "integer" || s.type === "number") {
    return h("input", { ...common, type: "number", value: s.default ?? "", step: s.type === "integer" ? "1" : "any",
      min: s.minimum, max: s.maximum });
  }
  return h("input", { ...common, type: "text", value: s.default ?? "", maxlength: s.maxLength });
}

function field(name, s, input) {
  const label = s.title || name;
  const help = [s.description, rangeText(s)].filter(Boolean).join(" — ");
  const error = h("p.field-error", { id: `error-${name}`, role: "alert" });
  const body = s.type === "boolean"
    ? [h("label.check", { for: input.id }, input, label)]
    : [h("label", { for: input.id, text: label }), input];
  return h("div.field", { "data-field": name }, ...body, h("p.help", { id: `help-${name}`, text: help }), error);
}

function valueOf(input, s) {
  if (input.type === "checkbox") return input.checked;
  if (input.value === "") return null;
  if (s.type === "integer") return parseInt(input.value, 10);
  if (s.type === "number") return parseFloat(input.value);
  return input.value;
}

export async function render(main) {
  const [info, spec, { datasets }, bases] = await Promise.all([
    api("api/info"), api("openapi.json"), api("api/datasets"),
    api("v1/models").then((m) => m.data.filter((x) => x.owned_by === "system").map((x) => x.id)).catch(() => []),
  ]);
  const schema = spec.components.schemas.TrainingRequest;
  const names = Object.keys(schema.properties);
  const fields = Object.fromEntries(names.map((n) => [n, resolveSchema(schema.properties[n], spec)]));
  fields.dataset = { ...fields.dataset, enum: [] };  // a choice among the uploaded datasets that fit
  const inputs = Object.fromEntries(names.map((n) => [n, control(n, fields[n])]));
  inputs.model_name.setAttribute("list", "base-models");
  inputs.model_name.required = true;
  const supported = info.supported.map((c) => `${c.task}|${c.strategy}|${c.provider}`);
  const comboNote = h("p.field-error", { id: "combo-error", role: "alert" });
  const formError = h("p.error", { id: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", text: "Start training" });

  function choose() {
    // Strategies with any provider for the task; providers for the task and strategy; the rest disabled.
    const [task] = [inputs.task.value];
    for (const option of inputs.strategy.options) {
      option.disabled = !supported.some((c) => c.startsWith(`${task}|${option.value}|`));
    }
    if (inputs.strategy.selectedOptions[0]?.disabled) {
      const first = [...inputs.strategy.options].find((o) => !o.disabled);
      if (first) inputs.strategy.value = first.value;
    }
    for (const option of inputs.provider.options) {
      option.disabled = !supported.includes(`${task}|${inputs.strategy.value}|${option.value}`);
    }
    if (inputs.provider.selectedOptions[0]?.disabled) {
      const first = [...inputs.provider.options].find((o) => !o.disabled);
      if (first) inputs.provider.value = first.value;
    }
    const ok = supported.includes(COMBO.map((n) => inputs[n].value).join("|"));
    comboNote.textContent = ok ? "" : "This task, strategy and provider do not train together here.";
    submit.disabled = !ok;
    // Datasets whose rows the choice trains on.
    const formats = info.dataset_formats?.[`${task}/${inputs.strategy.value}`] || [];
    const previous = inputs.dataset.value;
    const fitting = datasets.filter((d) => formats.includes(d.format || "pairs"));
    clear(inputs.dataset, fitting.length ? fitting.map((d) => h("option", { value: d.filename,
      text: `${d.filename} (${d.format}, ${d.num_examples} rows)`, selected: d.filename === previous }))
      : h("option", { value: "", text: `no uploaded ${formats.join(" or ")} dataset` }));
    inputs.dataset.closest(".field")?.querySelector(".help")?.replaceChildren(
      `Uploaded datasets of ${formats.join(" or ")} rows (what this task and strategy train on).`);
  }
  for (const name of COMBO) inputs[name].addEventListener("change", choose);

  const advanced = names.filter((n) => !COMMON.includes(n));
  const form = h("form.card", { id: "new-job-form", novalidate: true },
    h("div.fields", {}, COMMON.filter((n) => inputs[n]).map((n) => field(n, fields[n], inputs[n]))), comboNote,
    h("details", {}, h("summary", { text: `Advanced (${advanced.length} more fields)` }),
      h("div.fields", {}, advanced.map((n) => field(n, fields[n], inputs[n])))),
    h("datalist", { id: "base-models" }, bases.map((b) => h("option", { value: b }))),
    formError, h("div.row", {}, submit));
  main.append(h("h1", { text: "New job" }), form);
  choose();

  function showError(error) {
    for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
    formError.textContent = "";
    // A validation error lists its fields; another 400 names one in its text (e.g. "num_workers=5 needs ...").
    const items = error.body?.errors?.length ? error.body.errors
      : [{ field: names.map((n) => [n, errorText(error).search(new RegExp(`\\b${n}\\b`))])
        .filter(([, at]) => at >= 0).sort((a, b) => a[1] - b[1] || b[0].length - a[0].length)[0]?.[0],
      message: errorText(error) }];
    for (const item of items) {
      const target = form.querySelector(`#error-${CSS.escape(item.field || "")}`);
      if (target) {
        target.textContent = item.message;
        target.closest("details")?.setAttribute("open", "");
        inputs[item.field]?.focus();
      } else {
        formError.textContent = errorText(error);
      }
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    // The request holds what was chosen: the required fields and every field changed from its default.
    const body = {};
    for (const name of names) {
      const value = valueOf(inputs[name], fields[name]);
      if (schema.required.includes(name) || (value !== null && value !== fields[name].default)) body[name] = value;
    }
    submit.disabled = true;
    try {
      const started = await api("api/start_training", { method: "POST", json: body });
      location.hash = `#/jobs/${started.job_id}`;
    } catch (error) {
      showError(error);
    } finally {
      submit.disabled = false;
    }
  });
}
