// The dashboard: projects -> runs -> one run, and compare. Hash routes, live by polling with cursors.
import { api, badge, duration, el, fill, flatten, fmt, show, when } from "./util.js";
import { compareChart, destroyCharts, metricChart } from "./charts.js";
import { compareMediaSection, mediaSection } from "./media.js";

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
// How often a live page asks for news; ?poll_ms= in the page's address overrides it (the leak test uses it).
const POLL_MS = Number(new URLSearchParams(location.search).get("poll_ms")) || 2000;
const CHART_WIDTH = 430; // the grid's columns are at least this wide (style.css)
let stopPolling = () => {};

// -- theme: follows the system, a toggle overrides it ------------------------------------------------
const themeButton = document.getElementById("theme");
function applyTheme(theme) {
  document.documentElement.dataset.theme = theme || "";
}
applyTheme(localStorage.getItem("stepline-theme"));
themeButton.addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  const next = dark ? "light" : "dark";
  localStorage.setItem("stepline-theme", next);
  applyTheme(next);
});
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea")) return;
  if (event.key === "t") themeButton.click();
  if (event.key === "/") {
    const filter = document.querySelector("[data-filter]");
    if (filter) { event.preventDefault(); filter.focus(); }
  }
});

// -- routing ----------------------------------------------------------------------------------
function route() {
  stopPolling();
  destroyCharts(view);
  const [path, query] = location.hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  fill(view, el("p", { className: "muted" }, "Loading…"));
  let page;
  if (parts[0] === "p" && parts[2] === "r") page = runPage(parts[1], parts[3]);
  else if (parts[0] === "p" && parts[2] === "compare") page = comparePage(parts[1], (params.get("runs") || "").split(","));
  else if (parts[0] === "p") page = runsPage(parts[1]);
  else page = projectsPage();
  page.catch((error) => fill(view, el("p", { className: "error", role: "alert" }, error.message)));
}
window.addEventListener("hashchange", route);
route();

function setCrumbs(...items) {
  fill(crumbs, ...items.flatMap((item, i) => [i ? " / " : "", item]));
}

// Calls refresh(stop) every POLL_MS until the page moves on or refresh calls stop().
function poll(refresh) {
  let timer = null, stopped = false;
  const stop = () => { stopped = true; clearTimeout(timer); };
  const tick = async () => {
    try { await refresh(stop); } catch (error) { console.warn(error); }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  timer = setTimeout(tick, POLL_MS);
  stopPolling = stop;
}

function emptyState(text) {
  return el("div", { className: "empty" }, el("p", {}, text),
    el("p", {}, "Track a run with ", el("code", {}, "python examples/plain_loop.py"),
      " and it appears here, live."));
}

// -- projects ----------------------------------------------------------------------------------
async function projectsPage() {
  setCrumbs();
  const render = (projects) => {
    if (!projects.length) return fill(view, emptyState("No runs yet in this logbook."));
    fill(view, el("h1", {}, "Projects"), el("table", { className: "grid" },
      el("thead", {}, el("tr", {}, el("th", {}, "Project"), el("th", {}, "Runs"), el("th", {}, "Last activity"))),
      el("tbody", {}, projects.map((p) => el("tr", {},
        el("td", {}, el("a", { href: `#/p/${encodeURIComponent(p.name)}` }, p.name)),
        el("td", { className: "num" }, p.runs), el("td", {}, when(p.last_activity)))))));
  };
  render((await api("/projects")).projects);
  poll(async () => render((await api("/projects")).projects));
}

// -- one project's runs ------------------------------------------------------------------------
function mainKeys(runs) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))];
  return keys.sort((a, b) => (b.includes("loss") - a.includes("loss"))).slice(0, 3);
}

function matches(run, text, status) {
  if (status && run.status !== status) return false;
  if (!text) return true;
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  const params = flatten(run.params);
  return words.every((word) => {
    if (word.includes("=")) {
      const [key, value] = word.split("=");
      return Object.entries(params).some(([k, v]) => k.toLowerCase() === key && String(v).toLowerCase() === value);
    }
    return run.name.toLowerCase().includes(word) || run.id.includes(word) || run.status === word
      || run.tags.some((t) => t.toLowerCase().includes(word));
  });
}

async function runsPage(project) {
  const projectPath = `/projects/${encodeURIComponent(project)}`;
  setCrumbs(el("a", { href: `#/p/${encodeURIComponent(project)}` }, project));
  const state = { runs: (await api(`${projectPath}/runs`)).runs, sort: "started_at", descending: true,
    text: "", status: "", selected: new Set() };
  const filter = el("input", { type: "search", placeholder: "Filter: name, tag, status, or param=value  ( / )",
    "data-filter": true, "aria-label": "Filter runs", oninput: (e) => { state.text = e.target.value; draw(); } });
  const statusSelect = el("select", { "aria-label": "Status", onchange: (e) => { state.status = e.target.value; draw(); } },
    ["", "running", "finished", "failed", "killed", "crashed"].map((s) => el("option", { value: s }, s || "any status")));
  const compareButton = el("button", { type: "button", disabled: true, onclick: () => {
    location.hash = `#/p/${encodeURIComponent(project)}/compare?runs=${[...state.selected].join(",")}`;
  } }, "Compare selected");
  const deleteButton = el("button", { type: "button", className: "danger", onclick: async () => {
    if (!confirm(`Delete project ${project} and all its ${state.runs.length} runs? This cannot be undone.`)) return;
    await api(projectPath, { method: "DELETE" });
    location.hash = "#/";
  } }, "Delete project");
  const table = el("table", { className: "grid runs" });
  fill(view, el("h1", {}, project),
    el("div", { className: "toolbar" }, filter, statusSelect, compareButton, deleteButton), table);

  function column(label, key) {
    const arrow = state.sort === key ? (state.descending ? " ▼" : " ▲") : "";
    return el("th", { "aria-sort": state.sort === key ? (state.descending ? "descending" : "ascending") : "none" },
      el("button", { type: "button", className: "sort", onclick: () => {
        state.descending = state.sort === key ? !state.descending : false;
        state.sort = key;
        draw();
      } }, label + arrow));
  }

  function value(run, key) {
    if (key.startsWith("metric:")) {
      const summary = run.metrics[key.slice(7)];
      const last = summary ? Number(summary.last) : NaN;
      return Number.isNaN(last) ? -Infinity : last;
    }
    return run[key] ?? "";
  }

  function draw() {
    const keys = mainKeys(state.runs);
    const runs = state.runs.filter((r) => matches(r, state.text, state.status));
    runs.sort((a, b) => {
      const [x, y] = [value(a, state.sort), value(b, state.sort)];
      return (x < y ? -1 : x > y ? 1 : 0) * (state.descending ? -1 : 1);
    });
    compareButton.disabled = state.selected.size < 2;
    if (!state.runs.length) return fill(table, el("caption", {}, emptyState("No runs in this project.")));
    fill(table, 
      el("thead", {}, el("tr", {}, el("th", {}, ""), column("Name", "name"), column("Status", "status"),
        column("Started", "started_at"), column("Duration", "duration"), column("Steps", "steps"),
        el("th", {}, "Tags"), keys.map((k) => column(k, `metric:${k}`)))),
      el("tbody", {}, runs.map((run) => el("tr", { "data-run": run.id },
        el("td", {}, el("input", { type: "checkbox", "aria-label": `select ${run.name}`,
          checked: state.selected.has(run.id), onchange: (e) => {
            e.target.checked ? state.selected.add(run.id) : state.selected.delete(run.id);
            compareButton.disabled = state.selected.size < 2;
          } })),
        el("td", {}, el("a", { href: `#/p/${encodeURIComponent(project)}/r/${run.id}` }, run.name),
          el("span", { className: "muted id" }, run.id)),
        el("td", {}, badge(run.status)), el("td", {}, when(run.started_at)),
        el("td", { className: "num" }, duration(run.duration)), el("td", { className: "num", "data-steps": run.steps }, run.steps),
        el("td", {}, run.tags.map((t) => el("span", { className: "tag" }, t))),
        keys.map((k) => el("td", { className: "num" }, fmt(run.metrics[k]?.last))))),
      ),
      runs.length ? null : el("caption", {}, "No run matches the filter."),
    );
  }
  draw();
  poll(async () => { state.runs = (await api(`${projectPath}/runs`)).runs; draw(); });
}

// -- one run -----------------------------------------------------------------------------------
function chartOptions(state, axis = state.axis) {
  return { axis, smoothing: state.smoothing, log: state.log,
    width: CHART_WIDTH };
}

// The machine's figures (system/...) are sampled on a clock, not at training steps: always against time.
const SYSTEM = "system/";
function axisOf(key, state) { return key.startsWith(SYSTEM) ? "time" : state.axis; }
// A chart group per prefix; in a job over several nodes, a group per machine (system/node.3/...).
function groupOf(key) {
  const parts = key.split("/");
  if (parts.length < 2) return "other";
  return parts[0] === "system" && parts.length > 2 && parts[1].startsWith("node.") ? `system/${parts[1]}` : parts[0];
}

function controls(state, redraw) {
  return el("div", { className: "toolbar" },
    el("label", {}, "x-axis ", el("select", { onchange: (e) => { state.axis = e.target.value; redraw(true); } },
      ["step", "epoch", "time"].map((a) => el("option", { value: a, selected: a === state.axis }, a)))),
    el("label", {}, "smoothing ", el("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: state.smoothing,
      "aria-label": "smoothing", oninput: (e) => { state.smoothing = Number(e.target.value); redraw(false); } })),
    el("label", {}, el("input", { type: "checkbox", checked: state.log,
      onchange: (e) => { state.log = e.target.checked; redraw(false); } }), " log scale"));
}

async function runPage(project, runId) {
  const base = `/projects/${encodeURIComponent(project)}/runs/${runId}`;
  const run = await api(base);
  setCrumbs(el("a", { href: `#/p/${encodeURIComponent(project)}` }, project), el("span", {}, run.name));
  const state = { axis: "step", smoothing: 0, log: false, series: {}, boxes: {}, status: run.status };
  const charts = el("div", { className: "charts" });
  const header = el("div", { className: "run-head" });
  const logsBox = el("section", {});
  const filesBox = el("section", {});
  const mediaBox = el("div", {});

  function drawHeader(current) {
    fill(header, el("h1", {}, current.name, " ", badge(current.status)),
      el("p", { className: "muted" }, `id ${current.id} · started ${when(current.started_at)} · `,
        `duration ${duration(current.duration)} · ${current.steps} log calls`,
        current.tags.length ? ` · tags ${current.tags.join(", ")}` : ""),
      current.error ? el("pre", { className: "error" }, `${current.error.type || "error"}: ${current.error.message}`) : null);
  }

  async function loadSeries() {
    const keys = Object.keys(run.metrics);
    const byAxis = {};
    for (const key of keys) (byAxis[axisOf(key, state)] ??= []).push(key);
    for (const [axis, some] of Object.entries(byAxis)) {
      const query = `keys=${some.map(encodeURIComponent).join(",")}&x=${axis}&points=1000`;
      for (const s of (await api(`${base}/series?${query}`)).series) state.series[s.key] = s;
    }
  }

  function drawCharts() {
    const keys = Object.keys(state.series);
    if (!keys.length) return fill(charts, el("p", { className: "muted" }, "No metrics logged yet."));
    const groups = {};
    for (const key of keys) (groups[groupOf(key)] ??= []).push(key);
    for (const name of Object.keys(groups).filter((g) => g === "system" || g.startsWith(SYSTEM))) {
      const machine = groups[name]; delete groups[name]; groups[name] = machine; // the machines last
    }
    destroyCharts(charts);
    state.boxes = {};
    const chart = (key) => (state.boxes[key] = metricChart(state.series[key], chartOptions(state, axisOf(key, state))));
    fill(charts, ...Object.entries(groups).map(([group, groupKeys]) => el("section", { className: "group" },
      el("h2", {}, group), el("div", { className: "chart-grid" }, groupKeys.map(chart)))));
  }

  async function redraw(refetch) {
    if (refetch) await loadSeries();
    drawCharts();
  }

  async function drawLogs(level = "") {
    const { logs, total } = await api(`${base}/logs?limit=500${level ? `&level=${level}` : ""}`);
    const select = el("select", { "aria-label": "Log level", onchange: (e) => drawLogs(e.target.value) },
      ["", "DEBUG", "INFO", "WARNING", "ERROR"].map((l) => el("option", { value: l, selected: l === level }, l || "all levels")));
    fill(logsBox, el("h2", {}, `Logs (${total})`), select, logs.length
      ? el("table", { className: "grid logs" }, el("tbody", {}, logs.map((line) => el("tr", { className: line.level },
        el("td", {}, when(line.time)), el("td", {}, line.level), el("td", {}, line.message),
        el("td", { className: "muted" }, Object.keys(line.context).length ? JSON.stringify(line.context) : "")))))
      : el("p", { className: "muted" }, "No log lines."));
  }

  async function drawFiles() {
    const { files } = await api(`${base}/files`);
    fill(filesBox, el("h2", {}, `Files (${files.length})`), files.length
      ? el("ul", { className: "files" }, files.map((f) => el("li", {},
        el("a", { href: `/api/v1${base}/files/${f.path.split("/").map(encodeURIComponent).join("/")}`, download: true }, f.path),
        el("span", { className: "muted" }, ` ${f.size} bytes`))))
      : el("p", { className: "muted" }, "No files."));
  }

  const params = flatten(run.params);
  const paramsTable = Object.keys(params).length
    ? el("table", { className: "grid params" }, el("tbody", {}, Object.keys(params).sort().map((k) =>
      el("tr", {}, el("th", {}, k), el("td", {}, show(params[k]))))))
    : el("p", { className: "muted" }, "No params.");
  const summary = Object.entries(run.summary || {});
  const deleteButton = el("button", { type: "button", className: "danger", onclick: async () => {
    if (!confirm(`Delete run ${run.name} (${run.id})? This cannot be undone.`)) return;
    await api(`${base}${run.status === "running" ? "?force=true" : ""}`, { method: "DELETE" });
    location.hash = `#/p/${encodeURIComponent(project)}`;
  } }, "Delete run");

  drawHeader(run);
  await loadSeries();
  fill(view, header, el("div", { className: "toolbar" }, controls(state, redraw), deleteButton), charts, mediaBox,
    el("section", {}, el("h2", {}, "Params"), paramsTable),
    summary.length ? el("section", {}, el("h2", {}, "Summary"), el("table", { className: "grid params" },
      el("tbody", {}, summary.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, show(v))))))) : null,
    logsBox, filesBox);
  drawCharts();
  let mediaCount = 0;
  async function drawMedia() {
    const { count, node } = await mediaSection(base);
    if (!charts.isConnected) return;
    mediaCount = count;
    fill(mediaBox, node);
  }
  await Promise.all([drawLogs(), drawFiles(), drawMedia()]);

  // Live: while the run is running, fetch only the points after what the page already has, and update the
  // charts in place; once it has ended, one last update and no more polling.
  if (run.status !== "running") return;
  poll(async (stop) => {
    const current = await api(base);
    if (!charts.isConnected) return; // the page moved on while the answer was on its way
    drawHeader(current);
    if (current.status !== "running") stop();
    if ((await api(`${base}/media?after=${mediaCount}`)).media.length) await drawMedia(); // new media: the newest shown
    const keys = Object.keys(current.metrics);
    const fresh = keys.filter((k) => !state.series[k] || state.series[k].count !== current.metrics[k].count);
    if (!fresh.length) return;
    for (const key of fresh) {
      const have = state.series[key];
      if (!have || have.downsampled) {
        const [s] = (await api(`${base}/series?keys=${encodeURIComponent(key)}&x=${axisOf(key, state)}&points=1000`)).series;
        state.series[key] = s;
      } else {
        const [s] = (await api(`${base}/series?keys=${encodeURIComponent(key)}&x=${axisOf(key, state)}&raw=true&after=${have.count}`)).series;
        state.series[key] = { ...have, count: s.count, x: have.x.concat(s.x), y: have.y.concat(s.y), step: have.step.concat(s.step) };
      }
    }
    if (!charts.isConnected) return;
    if (fresh.every((key) => state.boxes[key])) fresh.forEach((key) => state.boxes[key].update(state.series[key]));
    else drawCharts(); // a new metric: its group may be new too
  });
}

// -- compare -----------------------------------------------------------------------------------
async function comparePage(project, runIds) {
  const path = `/projects/${encodeURIComponent(project)}/compare?runs=${runIds.join(",")}`;
  setCrumbs(el("a", { href: `#/p/${encodeURIComponent(project)}` }, project), el("span", {}, "compare"));
  const state = { axis: "step", smoothing: 0, log: false, data: null };
  const charts = el("div", { className: "charts chart-grid" });
  const diffBox = el("section", {});
  const mediaBox = el("div", {});

  async function load() { state.data = await api(`${path}&x=${state.axis}`); }
  function draw() {
    const runs = state.data.runs;
    const keys = [...new Set(runs.flatMap((r) => r.series.map((s) => s.key)))].sort();
    destroyCharts(charts);
    fill(charts, ...keys.map((key) => compareChart(key, runs.filter((r) => r.series.some((s) => s.key === key))
      .map((r) => ({ name: r.name, series: r.series.find((s) => s.key === key) })), chartOptions(state))));
    const diff = Object.entries(state.data.params_diff);
    fill(diffBox, el("h2", {}, "Params that differ"), diff.length
      ? el("table", { className: "grid params diff" }, el("thead", {}, el("tr", {}, el("th", {}, "param"),
        runs.map((r) => el("th", {}, r.name)))), el("tbody", {}, diff.map(([key, values]) => el("tr", {},
        el("th", {}, key), values.map((v) => el("td", {}, show(v)))))))
      : el("p", { className: "muted" }, "These runs have the same params."));
  }
  async function redraw(refetch) { if (refetch) await load(); draw(); }
  await load();
  fill(view, el("h1", {}, `Compare ${state.data.runs.map((r) => r.name).join(", ")}`),
    controls(state, redraw), charts, mediaBox, diffBox);
  draw();
  fill(mediaBox, await compareMediaSection(project, state.data.runs));
}
