// charts.js: the small SVG charts of the live view and the demo report,
// written for them: no library, nothing loaded from a network.
"use strict";

const charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 230, M = { top: 14, right: 16, bottom: 30, left: 56 };

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, s, attrs) {
    const t = el("text", Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = s;
    return t;
  }

  // ticks returns about n round values from lo to hi.
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(f => f * mag).find(s => s >= raw) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  // number formats v for people: 1,234 / 12.3 / 0.05.
  function number(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString("en-US");
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return "0";
    return String(+v.toPrecision(2));
  }

  function percent(r) { return isFinite(r) ? (100 * r).toFixed(1) + "%" : "–"; }

  // ms formats milliseconds with a unit that suits them.
  function ms(v) {
    if (!isFinite(v)) return "–";
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    if (v >= 1) return +v.toPrecision(3) + " ms";
    return +(v * 1000).toPrecision(3) + " µs";
  }

  // chart draws opts in container, replacing what was there.
  //   series:  [{name, color, points: [[x, y], ...], area, dash, width}]
  //   stacked: stack the series (they share their x values); areas filled;
  //            a series of zeros is left out (but not out of the legend)
  //   log:     logarithmic y axis (values <= 0 are left out)
  //   xMin, xMax, yMin, yMax: the axes' ranges (default: the data's)
  //   xLabel, yFormat(v), xFormat(v): axis text
  //   markers: [{x, label, color}]: dashed vertical lines (red by default)
  //   marks:   [{name, color}]: legend entries for markers of a color
  //   empty:   text shown when there is no data
  function chart(container, opts) {
    const series = (opts.series || []).map(s => Object.assign({}, s, { points: (s.points || []).filter(p => isFinite(p[0]) && isFinite(p[1])) }));
    if (opts.stacked) {
      // A series that is zero throughout would draw its line over the top
      // of the stack: it is only in the legend.
      for (const s of series) s.hidden = s.points.every(p => p[1] === 0);
      const base = new Map();
      for (const s of series) {
        s.lower = [];
        s.points = s.points.map(([x, y]) => {
          const b = base.get(x) || 0;
          base.set(x, b + y);
          s.lower.push([x, b]);
          return [x, b + y];
        });
      }
    }
    if (opts.log) for (const s of series) s.points = s.points.filter(p => p[1] > 0);
    const all = series.flatMap(s => s.points);
    container.textContent = "";
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.title || "" }, container);
    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    let x0 = opts.xMin, x1 = opts.xMax, y0 = opts.yMin, y1 = opts.yMax;
    if (x0 === undefined) x0 = all.length ? Math.min(...all.map(p => p[0])) : 0;
    if (x1 === undefined) x1 = all.length ? Math.max(...all.map(p => p[0])) : 1;
    if (x1 <= x0) x1 = x0 + 1;
    const ys = all.map(p => p[1]);
    let yt;
    let ypos;
    if (opts.log) {
      let lo = y0 !== undefined ? y0 : (ys.length ? Math.min(...ys) : 0.001);
      let hi = y1 !== undefined ? y1 : (ys.length ? Math.max(...ys) : 1);
      const e0 = Math.floor(Math.log10(lo)), e1 = Math.max(Math.ceil(Math.log10(hi)), e0 + 1);
      yt = [];
      for (let e = e0; e <= e1; e++) yt.push(Math.pow(10, e));
      ypos = v => M.top + ph - (Math.log10(v) - e0) / (e1 - e0) * ph;
    } else {
      if (y0 === undefined) y0 = Math.min(0, ...ys);
      if (y1 === undefined) y1 = Math.max(0, ...ys);
      if (y1 <= y0) y1 = y0 + 1;
      yt = ticks(y0, y1, 4);
      y1 = Math.max(y1, yt[yt.length - 1]);
      const lo = y0, hi = y1;
      ypos = v => M.top + ph - (v - lo) / (hi - lo) * ph;
    }
    const xpos = v => M.left + (v - x0) / (x1 - x0) * pw;
    const yf = opts.yFormat || number, xf = opts.xFormat || (v => String(+v.toFixed(3)));
    for (const v of yt) {
      const y = ypos(v);
      el("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y, y2: y }, svg);
      text(svg, M.left - 6, y + 4, yf(v), { "text-anchor": "end" });
    }
    for (const v of ticks(x0, x1, 6)) {
      const x = xpos(v);
      el("line", { class: "axis", x1: x, x2: x, y1: M.top + ph, y2: M.top + ph + 4 }, svg);
      text(svg, x, H - M.bottom + 17, xf(v), { "text-anchor": "middle" });
    }
    el("line", { class: "axis", x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph }, svg);
    if (opts.xLabel) text(svg, W - M.right, H - 2, opts.xLabel, { "text-anchor": "end" });
    if (!all.length) {
      text(svg, M.left + pw / 2, M.top + ph / 2, opts.empty || "no data yet", { "text-anchor": "middle", class: "empty" });
    }
    const clamp = y => Math.max(M.top, Math.min(M.top + ph, y));
    const path = pts => pts.map((p, i) => (i ? "L" : "M") + xpos(p[0]).toFixed(1) + "," + clamp(ypos(p[1])).toFixed(1)).join("");
    // Areas first, lines over them; the first series at the bottom.
    for (const s of series) {
      if (!(opts.stacked || s.area) || s.hidden || s.points.length < 2) continue;
      const lower = opts.stacked ? s.lower.slice().reverse() : [[s.points[s.points.length - 1][0], y0 || 0], [s.points[0][0], y0 || 0]];
      el("path", { d: path(s.points) + path(lower).replace(/^M/, "L") + "Z", fill: s.color, "fill-opacity": opts.stacked ? 0.55 : 0.15, stroke: "none", class: "area" }, svg);
    }
    for (const s of series) {
      if (!s.points.length || s.hidden) continue;
      const attrs = { d: path(s.points), fill: "none", stroke: s.color, "stroke-width": s.width || 1.8, class: "line", "data-series": s.name };
      if (s.dash) attrs["stroke-dasharray"] = s.dash;
      el("path", attrs, svg);
      if (s.points.length === 1) el("circle", { cx: xpos(s.points[0][0]), cy: ypos(s.points[0][1]), r: 3, fill: s.color }, svg);
    }
    for (const m of opts.markers || []) {
      if (m.x < x0 || m.x > x1) continue;
      const x = xpos(m.x);
      const line = el("line", { class: "marker", x1: x, x2: x, y1: M.top, y2: M.top + ph }, svg);
      if (m.color) line.style.stroke = m.color;
      if (m.label) text(svg, x + 4, M.top + 10, m.label, { class: "marker-label" });
    }
    const legend = document.createElement("div");
    legend.className = "legend";
    for (const s of series.concat(opts.marks || [])) {
      const item = document.createElement("span");
      const sw = document.createElement("i");
      sw.style.background = s.color;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(s.name));
      legend.appendChild(item);
    }
    container.appendChild(legend);
    return svg;
  }

  const colors = {
    hit: "#16a34a", negative: "#0891b2", stale: "#ca8a04", miss: "#2563eb",
    stale_if_error: "#ea580c", fallback: "#9333ea", error: "#dc2626",
    l1: "#16a34a", l2: "#0891b2", origin: "#2563eb", none: "#9ca3af",
  };

  return { chart, number, percent, ms, colors };
})();
