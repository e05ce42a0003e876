// report.js: draws a demo report (the JSON of "tiercache demo --json",
// inline in the page) with the live view's charts.
"use strict";

(() => {
  const $ = id => document.getElementById(id);
  const r = JSON.parse($("page-data").textContent);

  function set(id, v, s) {
    const e = $(id);
    e.dataset.value = String(v);
    e.textContent = s === undefined ? charts.number(v) : s;
  }

  function rows(tbody, list) {
    for (const cells of list) {
      const tr = document.createElement("tr");
      cells.forEach((c, i) => {
        const td = document.createElement(i ? "td" : "th");
        td.textContent = c;
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    }
  }

  const c = r.cached, b = r.baseline, k = r.cache, s = r.stampede;
  const cp = (c.timeline && c.timeline.points) || [], bp = (b.timeline && b.timeline.points) || [];
  const cstep = (c.timeline && c.timeline.step_s) || 1, bstep = (b.timeline && b.timeline.step_s) || 1;
  const mid = (p, step) => p.at_s + step / 2;

  set("keyspace-version", r.keyspace_version, r.keyspace_version);
  const rate = r.rate > 0 ? `at ${charts.number(r.rate)} requests/s` : "as fast as they go";
  $("setup").textContent = `${r.instances} service instances, ${r.workers} workers, ${r.duration_s} s ${rate}; ` +
    `origin: SQLite with ${charts.number(r.users)} users, +${r.origin_latency_ms} ms per query. Mode: ${r.mode}.`;
  set("requests", c.requests);
  set("requests-rate", c.requests_per_s);
  set("hit-ratio", k.hit_ratio, charts.percent(k.hit_ratio));
  set("l1-ratio", k.l1_hit_ratio, charts.percent(k.l1_hit_ratio));
  set("l2-ratio", k.l2_hit_ratio, charts.percent(k.l2_hit_ratio));
  set("origin-queries", c.origin_queries);
  set("origin-without", r.origin_queries_without_cache);
  set("reduction", r.reduction, r.reduction.toFixed(1) + "×");
  set("p50", c.p50_ms, charts.ms(c.p50_ms));
  set("p50-baseline", b.p50_ms, charts.ms(b.p50_ms));
  set("stampede-calls", s.origin_calls);
  set("stampede-reads", s.reads);
  $("stampede-explain").textContent = `At ${s.at_s.toFixed(1)} s the hot key ${s.key} expired as all ${s.readers} workers read it. ` +
    `In the next ${s.window_s} s: ${charts.number(s.reads)} reads of it, ${s.origin_calls} origin ` +
    `${s.origin_calls === 1 ? "call" : "calls"} (without a cache: ${charts.number(s.reads)}), ${charts.number(s.stale_served)} served stale: ${s.explanation}.`;

  const marker = [{ x: s.at_s, label: "stampede" }];
  const secs = { xLabel: "seconds into the run", xMin: 0, xMax: Math.max(r.cached.seconds, r.baseline.seconds, 0.1) };
  const withReads = pts => pts.filter(p => p.reads > 0);
  charts.chart($("chart-latency"), Object.assign({
    log: true, yFormat: charts.ms, markers: marker,
    series: [
      { name: "p99 without cache", color: "#dc2626", dash: "5 3", points: withReads(bp).map(p => [mid(p, bstep), p.read_p99_ms]) },
      { name: "p50 without cache", color: "#f97316", dash: "5 3", points: withReads(bp).map(p => [mid(p, bstep), p.read_p50_ms]) },
      { name: "p99 with cache", color: "#2563eb", points: withReads(cp).map(p => [mid(p, cstep), p.read_p99_ms]) },
      { name: "p50 with cache", color: "#16a34a", points: withReads(cp).map(p => [mid(p, cstep), p.read_p50_ms]) },
    ],
  }, secs));
  const withCache = cp.filter(p => p.cache_reads > 0);
  charts.chart($("chart-hit"), Object.assign({
    stacked: true, yMin: 0, yMax: 1, yFormat: charts.percent, markers: marker,
    series: [
      { name: "L1", color: charts.colors.l1, points: withCache.map(p => [mid(p, cstep), p.l1_answers / p.cache_reads]) },
      { name: "L2", color: charts.colors.l2, points: withCache.map(p => [mid(p, cstep), p.l2_answers / p.cache_reads]) },
    ],
  }, secs, { xMax: r.cached.seconds }));
  charts.chart($("chart-origin"), Object.assign({
    markers: marker,
    series: [
      { name: "without cache", color: "#dc2626", dash: "5 3", points: bp.map(p => [mid(p, bstep), p.origin_queries / bstep]) },
      { name: "with cache", color: charts.colors.origin, area: true, points: cp.map(p => [mid(p, cstep), p.origin_queries / cstep]) },
    ],
  }, secs));
  // The stampede: the hot key's reads around its expiry, the stale answers,
  // and a marker at each step with origin calls for it.
  const lo = Math.max(0, s.at_s - 1), hi = Math.min(r.cached.seconds, s.at_s + 2);
  const near = cp.filter(p => p.at_s + cstep >= lo && p.at_s <= hi);
  const callColor = "#111827";
  const calls = near.filter(p => p.hot_origin_calls > 0).map(p => ({ x: mid(p, cstep), color: callColor }));
  const nCalls = near.reduce((n, p) => n + p.hot_origin_calls, 0);
  charts.chart($("chart-stampede"), {
    xMin: lo, xMax: hi, xLabel: "seconds into the run", yFormat: charts.number,
    markers: [{ x: s.at_s, label: "expiry" }].concat(calls),
    marks: [{ name: `origin calls for the key (${nCalls} in this window)`, color: callColor }],
    series: [
      { name: "hot key reads/s", color: charts.colors.miss, area: true, points: near.map(p => [mid(p, cstep), p.hot_reads / cstep]) },
      { name: "served stale/s", color: charts.colors.stale, points: near.map(p => [mid(p, cstep), p.hot_stale_served / cstep]) },
    ],
  });

  rows($("summary").tBodies[0], [
    ["requests", `${charts.number(c.requests)} in ${c.seconds.toFixed(1)} s`, `${charts.number(b.requests)} in ${b.seconds.toFixed(1)} s`],
    ["origin queries", charts.number(c.origin_queries), charts.number(b.origin_queries)],
    ["  per request", c.origin_queries_per_request.toFixed(3), b.origin_queries_per_request.toFixed(3)],
    ["read latency p50", charts.ms(c.p50_ms), charts.ms(b.p50_ms)],
    ["read latency p99", charts.ms(c.p99_ms), charts.ms(b.p99_ms)],
  ]);
  rows($("cache-table").tBodies[0], [
    ["cache reads", charts.number(k.requests)],
    ["answered from L1", charts.number(k.l1_answers)],
    ["answered from L2", charts.number(k.l2_answers)],
    ["negative hits", charts.number(k.negative_hits)],
    ["stale served", charts.number(k.stale_served)],
    ["misses", charts.number(k.misses)],
    ["shared loads", charts.number(k.shared_loads)],
    ["errors", charts.number(r.errors)],
  ]);
  $("status").textContent = r.errors ? `${charts.number(r.errors)} requests failed; first: ${r.first_error}` : "";
  document.body.dataset.loaded = "true";
})();
