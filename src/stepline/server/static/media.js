// A run's media: per key, a step slider over what was logged (images as a gallery per step, tables with sort and
// filter, text, audio with a player), and histograms as a heatmap of the distribution by step.
import { api, el, fill, fmt } from "./util.js";

const TOKEN_KEY = "stepline-token"; // util.js keeps the token there
const HEAT_ROWS = 48;

// A media file, fetched with the token a server off loopback needs (an <img src> would send none).
async function fetched(url) {
  const token = localStorage.getItem(TOKEN_KEY);
  const response = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}: ${url}`);
  return response;
}

// The run page's media section, and how many records it shows (a live page asks for those after them).
export async function mediaSection(base) {
  const { media } = await api(`${base}/media`);
  return { count: media.length, node: media.length ? mediaViews(media) : null };
}

function mediaViews(media) {
  const byKey = new Map();
  for (const record of media) {
    if (!byKey.has(record.key)) byKey.set(record.key, []);
    byKey.get(record.key).push(record);
  }
  return el("section", { className: "media" }, el("h2", {}, "Media"),
    [...byKey].map(([key, records]) => (records[0].kind === "histogram" ? heatmap(key, records) : stepped(key, records))));
}

// Compare: each key's media of several runs side by side, at one step the slider picks.
export async function compareMediaSection(project, runs) {
  const lists = await Promise.all(runs.map((run) => api(`/projects/${encodeURIComponent(project)}/runs/${run.id}/media`)));
  const keys = [...new Set(lists.flatMap((list) => list.media.map((record) => record.key)))];
  if (!keys.length) return null;
  return el("section", { className: "media" }, el("h2", {}, "Media"), keys.map((key) => {
    const perRun = runs.map((run, i) => ({ run, records: lists[i].media.filter((record) => record.key === key) }));
    const kind = perRun.find((p) => p.records.length).records[0].kind;
    if (kind === "histogram") {
      return el("div", { className: "media-compare-row", "data-key": key }, perRun.filter((p) => p.records.length)
        .map((p) => el("div", { className: "media-column", "data-run": p.run.id }, el("h3", {}, p.run.name), heatmap(key, p.records))));
    }
    return comparedSteps(key, kind, perRun);
  }));
}

function comparedSteps(key, kind, perRun) {
  const steps = [...new Set(perRun.flatMap((p) => p.records.map((record) => record.step)))].sort((a, b) => a - b);
  const columns = el("div", { className: "media-compare-row" });
  const label = el("span", { className: "muted" });
  const box = el("figure", { className: "media-view", "data-key": key, "data-kind": kind, "data-compare": "" });
  const urls = [];
  let ticket = 0;
  async function show(index) {
    const mine = ++ticket;
    const step = steps[index];
    const parts = await Promise.all(perRun.map(async ({ run, records }) => {
      const record = records.filter((r) => r.step === step).at(-1); // the last logged at this step
      return { run, shown: record ? await Promise.all(record.items.map((item) => RENDER[kind](item, key))) : [] };
    }));
    if (mine !== ticket) return;
    urls.splice(0).forEach((url) => URL.revokeObjectURL(url));
    urls.push(...parts.flatMap((part) => part.shown.map((p) => p.url)).filter(Boolean));
    label.textContent = `step ${step}`;
    box.dataset.step = step;
    fill(columns, parts.map(({ run, shown }) => el("div", { className: "media-column", "data-run": run.id },
      el("h3", {}, run.name), shown.length ? shown.map((p) => p.node) : el("p", { className: "muted" }, "nothing at this step"))));
  }
  const slider = steps.length > 1 ? el("input", { type: "range", min: 0, max: steps.length - 1, value: steps.length - 1,
    "aria-label": `${key} step`, oninput: (e) => show(Number(e.target.value)) }) : null;
  fill(box, el("figcaption", {}, el("strong", {}, key), " ", label), slider, columns);
  show(steps.length - 1);
  return box;
}

// One key's records, one step at a time; the last step first.
function stepped(key, records) {
  const body = el("div", { className: "media-body" });
  const label = el("span", { className: "muted" });
  const urls = [];
  let ticket = 0;
  const box = el("figure", { className: "media-view", "data-key": key, "data-kind": records[0].kind });
  async function show(index) {
    const mine = ++ticket; // a later move of the slider wins over an answer still on its way
    const record = records[index];
    const shown = await Promise.all(record.items.map((item) => RENDER[record.kind](item, key)));
    if (mine !== ticket) return;
    urls.splice(0).forEach((url) => URL.revokeObjectURL(url));
    urls.push(...shown.map((part) => part.url).filter(Boolean));
    label.textContent = `step ${record.step} · ${index + 1} of ${records.length}`;
    box.dataset.step = record.step;
    fill(body, shown.map((part) => part.node));
  }
  const slider = records.length > 1 ? el("input", { type: "range", min: 0, max: records.length - 1,
    value: records.length - 1, "aria-label": `${key} step`, oninput: (e) => show(Number(e.target.value)) }) : null;
  fill(box, el("figcaption", {}, el("strong", {}, key), " ", label), slider, body);
  show(records.length - 1);
  return box;
}

const RENDER = {
  async image(item, key) {
    const url = URL.createObjectURL(await (await fetched(item.url)).blob());
    return { url, node: el("figure", { className: "media-item" },
      el("img", { src: url, alt: item.caption || key, "data-file": item.file }),
      item.caption ? el("figcaption", {}, item.caption) : null) };
  },
  async audio(item) {
    const url = URL.createObjectURL(await (await fetched(item.url)).blob());
    return { url, node: el("figure", { className: "media-item" }, el("audio", { controls: true, src: url, "data-file": item.file }),
      el("figcaption", {}, `${item.caption ? `${item.caption} · ` : ""}${fmt(item.seconds)} s at ${item.sample_rate} Hz`)) };
  },
  async text(item) {
    return { node: el("pre", { className: "media-text" }, await (await fetched(item.url)).text()) };
  },
  async table(item) {
    const { columns, rows } = await (await fetched(item.url)).json();
    return { node: sortableTable(columns, rows) };
  },
};

function compareCells(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a ?? "").localeCompare(String(b ?? ""), undefined, { numeric: true });
}

function sortableTable(columns, rows) {
  let sortBy = null;
  let descending = false;
  let filter = "";
  const tbody = el("tbody");
  const draw = () => {
    let shown = filter ? rows.filter((row) => row.some((cell) => String(cell ?? "").toLowerCase().includes(filter))) : rows;
    if (sortBy !== null) shown = [...shown].sort((a, b) => compareCells(a[sortBy], b[sortBy]) * (descending ? -1 : 1));
    fill(tbody, shown.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell === null ? "" : String(cell))))));
  };
  const head = el("tr", {}, columns.map((name, i) => el("th", {}, el("button", { type: "button", className: "sort",
    onclick: () => { descending = sortBy === i ? !descending : false; sortBy = i; draw(); } }, name))));
  draw();
  return el("div", { className: "media-table" },
    el("input", { type: "search", placeholder: "filter rows", "aria-label": "filter rows",
      oninput: (e) => { filter = e.target.value.toLowerCase(); draw(); } }),
    el("table", { className: "grid" }, el("thead", {}, head), tbody));
}

// Histograms over steps: a column per step, darker where more of that step's values fell.
function heatmap(key, records) {
  const low = Math.min(...records.map((r) => r.items[0].edges[0]));
  const high = Math.max(...records.map((r) => r.items[0].edges.at(-1)));
  const span = high - low || 1;
  const canvas = el("canvas", { width: Math.max(records.length, 1), height: HEAT_ROWS, className: "heatmap",
    "data-steps": records.length });
  const context = canvas.getContext("2d");
  records.forEach((record, column) => {
    const { counts, edges } = record.items[0];
    const rows = new Array(HEAT_ROWS).fill(0);
    counts.forEach((count, i) => {
      const middle = (edges[i] + edges[i + 1]) / 2;
      rows[Math.min(HEAT_ROWS - 1, Math.floor(((middle - low) / span) * HEAT_ROWS))] += count;
    });
    const most = Math.max(...rows) || 1;
    rows.forEach((count, row) => {
      context.fillStyle = `rgba(37, 99, 235, ${count / most})`;
      context.fillRect(column, HEAT_ROWS - 1 - row, 1, 1);
    });
  });
  return el("figure", { className: "media-view", "data-key": key, "data-kind": "histogram" },
    el("figcaption", {}, el("strong", {}, key), " ",
      el("span", { className: "muted" }, `${records.length} steps (${records[0].step} to ${records.at(-1).step}) · values ${fmt(low)} to ${fmt(high)}`)),
    canvas);
}
