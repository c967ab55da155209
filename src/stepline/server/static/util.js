// Small helpers shared by the views: fetching the API, formatting, building elements.

// A server that needs a token (any address but loopback) answers 401: ask for one, keep it in this browser.
const TOKEN_KEY = "stepline-token";

export async function api(path, options = {}) {
  const token = localStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  const response = await fetch(`/api/v1${path}`, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    const entered = prompt("This stepline server needs an API token (stepline server token create --user NAME):");
    if (entered) {
      localStorage.setItem(TOKEN_KEY, entered.trim());
      return api(path, options);
    }
  }
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

// The API writes NaN and infinities as strings, as the logbook does.
export function num(value) {
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return value;
}

export function fmt(value) {
  value = num(value);
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
  if (Number.isInteger(value)) return String(value);
  const short = Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3 ? value.toExponential(3) : value.toPrecision(4);
  return String(Number(short));
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "–";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

// el("a", {href: "#/"}, "text", child) builds an element; attributes starting with "on" are listeners.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

// Replaces a node's children, skipping the null / false that conditional parts leave.
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function badge(status) {
  return el("span", { className: `badge ${status}`, title: `status: ${status}` }, status);
}

export function flatten(params, prefix = "", into = {}) {
  for (const [key, value] of Object.entries(params || {})) {
    if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) {
      flatten(value, `${prefix}${key}.`, into);
    } else {
      into[`${prefix}${key}`] = value;
    }
  }
  return into;
}

export function show(value) {
  return typeof value === "object" && value !== null ? JSON.stringify(value) : fmt(value);
}
