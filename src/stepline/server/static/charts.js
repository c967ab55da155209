// Charts on uPlot: one per metric, or one per key with every compared run overlaid.
import { el, fmt, num } from "./util.js";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

// Exponential moving average that skips gaps (NaN shows as a gap, never as a smoothed value).
export function smooth(values, weight) {
  if (!weight) return values;
  let last = null;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return v;
    last = last === null ? v : last * weight + v * (1 - weight);
    return last;
  });
}

// A series from the API as plottable numbers: NaN and infinities become gaps, counted separately.
export function plottable(series) {
  const x = series.x.map(num);
  const y = series.y.map(num);
  const nan = y.filter((v) => Number.isNaN(v)).length;
  return { x, y: y.map((v) => (Number.isFinite(v) ? v : null)), nan };
}

function extremes(x, y) {
  let min = null, max = null;
  y.forEach((v, i) => {
    if (v === null) return;
    if (min === null || v < y[min]) min = i;
    if (max === null || v > y[max]) max = i;
  });
  return { min, max };
}

// Marks the minimum and the maximum of the first series with rings.
function extremesPlugin(marks) {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        for (const [index, color] of [[marks.min, "#16a34a"], [marks.max, "#dc2626"]]) {
          if (index === null) continue;
          const cx = u.valToPos(u.data[0][index], "x", true);
          const cy = u.valToPos(u.data[1][index], "y", true);
          ctx.save();
          ctx.strokeStyle = color;
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.beginPath();
          ctx.arc(cx, cy, 5 * devicePixelRatio, 0, 2 * Math.PI);
          ctx.stroke();
          ctx.restore();
        }
      },
    },
  };
}

function axisLabel(axis) {
  return { step: "step", epoch: "epoch", time: "time" }[axis];
}

// What a metric chart shows of a series: its data, the marked extremes and the caption.
function metricView(series, options) {
  const { x, y, nan } = plottable(series);
  const shown = smooth(y, options.smoothing);
  const marks = extremes(x, y);
  // a time is shown as the clock read it, not as seconds since 1970
  const at = (v) => (options.axis === "time" ? new Date(v * 1000).toLocaleTimeString() : fmt(v));
  const caption = [
    `${series.count} points${series.downsampled ? `, ${x.length} shown (min/max of each bucket kept)` : ""}`,
    marks.min !== null ? `min ${fmt(y[marks.min])} at ${at(x[marks.min])}` : null,
    marks.max !== null ? `max ${fmt(y[marks.max])} at ${at(x[marks.max])}` : null,
    nan ? `${nan} NaN (gaps)` : null,
  ].filter(Boolean).join(" · ");
  return { data: [x, options.log ? shown.map((v) => (v > 0 ? v : null)) : shown], marks, caption, points: x.length };
}

// One metric of one run. options: {axis, smoothing, log, width}. box.update(series) redraws it in place.
export function metricChart(series, options) {
  let shown = metricView(series, options);
  const marks = { ...shown.marks };
  const captionText = el("span", {}, shown.caption);
  const box = el("figure", { className: "chart", "data-key": series.key, "data-points": shown.points,
    "data-count": series.count, "data-axis": options.axis },
  el("figcaption", {}, el("strong", {}, series.key), captionText));
  const opts = {
    width: options.width, height: 220,
    scales: { x: { time: options.axis === "time" }, y: options.log ? { distr: 3 } : {} },
    axes: [{ label: axisLabel(options.axis) }, {}],
    series: [{ label: axisLabel(options.axis) }, { label: series.key, stroke: PALETTE[0], width: 1.5,
      points: { show: shown.points < 60 }, value: (u, v) => fmt(v) }],
    plugins: [extremesPlugin(marks)],
  };
  box.chart = new uPlot(opts, shown.data, box);
  box.update = (fresh) => {
    shown = metricView(fresh, options);
    Object.assign(marks, shown.marks);
    captionText.textContent = shown.caption;
    box.dataset.points = shown.points;
    box.dataset.count = fresh.count;
    box.chart.setData(shown.data);
  };
  return box;
}

// uPlot keeps every chart in a global set, with window listeners, until destroy(): call this before a
// container's charts are replaced or the page moves on.
export function destroyCharts(container) {
  for (const box of container.querySelectorAll("figure.chart")) {
    if (box.chart) box.chart.destroy();
    box.chart = null;
  }
}

// One key across several runs, each its own line, on a shared x-axis.
export function compareChart(key, runs, options) {
  const tables = runs.map((run) => {
    const { x, y } = plottable(run.series);
    return [x, smooth(y, options.smoothing)];
  });
  const data = uPlot.join(tables);
  const box = el("figure", { className: "chart", "data-key": key, "data-runs": runs.length },
    el("figcaption", {}, el("strong", {}, key), el("span", {}, runs.map((r) => r.name).join(" vs "))));
  const opts = {
    width: options.width, height: 240,
    scales: { x: { time: options.axis === "time" }, y: options.log ? { distr: 3 } : {} },
    axes: [{ label: axisLabel(options.axis) }, {}],
    series: [{ label: axisLabel(options.axis) }, ...runs.map((run, i) => ({
      label: run.name, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true, value: (u, v) => fmt(v),
    }))],
  };
  box.chart = new uPlot(opts, data, box);
  return box;
}
