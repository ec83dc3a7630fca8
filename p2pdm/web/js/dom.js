// Small DOM helpers: build elements without innerHTML (text is always text).

/** h("button.primary", {onclick, "aria-label": "Send"}, "Send") */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long", year: "numeric", month: "long", day: "numeric",
});
const shortDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

export const clock = (ms) => timeFormat.format(new Date(ms));
export const day = (ms) => dayFormat.format(new Date(ms));
export const dayKey = (ms) => new Date(ms).toDateString();

/** "14:02" today, "Mon 3" earlier: for the inbox. */
export function when(ms) {
  return dayKey(ms) === dayKey(Date.now()) ? clock(ms) : shortDay.format(new Date(ms));
}

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** Tell screen-reader users what just happened (the polite live region). */
export function announce(text) {
  const region = document.getElementById("announce");
  if (region) { region.textContent = ""; setTimeout(() => { region.textContent = text; }, 50); }
}

/** A short error line in the page's status bar. */
export function showError(error) {
  const bar = document.getElementById("status-bar");
  const text = error && error.message ? error.message : String(error);
  if (bar) { bar.textContent = text; bar.hidden = false; }
  announce(text);
}

export function hideError() {
  const bar = document.getElementById("status-bar");
  if (bar) bar.hidden = true;
}
