// A few DOM and formatting helpers shared by the pages.

// h("tag.class", {attributes, onclick: ...}, ...children): an element.
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const element = document.createElement(tag || "div");
  if (classes.length) element.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

export function clear(element, ...children) {
  element.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

export const fmt = {
  time: (iso) => (iso ? new Date(iso).toLocaleString() : "—"),
  duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    const hours = Math.floor(s / 3600), minutes = Math.floor((s % 3600) / 60), rest = s % 60;
    return hours ? `${hours} h ${minutes} min` : minutes ? `${minutes} min ${rest} s` : `${rest} s`;
  },
  since: (startIso, endIso) => (startIso ? fmt.duration(((endIso ? new Date(endIso) : new Date()) - new Date(startIso)) / 1000) : "—"),
  number: (value, digits = 4) => (value === null || value === undefined ? "—" : Number(value).toPrecision(digits)),
  mb: (value) => (value === null || value === undefined ? "—" : `${Number(value).toFixed(2)} MB`),
};

export function badge(status) {
  return h(`span.badge.${status}`, { text: status });
}

export function errorText(error) {
  return error?.body?.detail || error?.message || String(error);
}

export const ACTIVE = ["queued", "starting", "training", "stopping"];
export const TERMINAL = ["completed", "failed", "stopped", "interrupted"];
