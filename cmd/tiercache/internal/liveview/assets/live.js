// live.js: the live page polls its data once a second and draws it.
"use strict";

(() => {
  const outcomes = ["hit", "negative", "stale", "miss", "stale_if_error", "fallback", "error"];
  const tiers = ["l1", "l2", "origin", "none"];
  const $ = id => document.getElementById(id);

  // set shows v in element id: text for people, data-value for tests.
  function set(id, v, s) {
    const e = $(id);
    e.dataset.value = v === null || v === undefined ? "" : String(v);
    e.textContent = s === undefined ? charts.number(v) : s;
  }

  function table(d) {
    const t = $("requests-table");
    const head = ["outcome", ...tiers, "total"].map(h => `<th>${h}</th>`).join("");
    t.tHead.innerHTML = `<tr>${head}</tr>`;
    const rows = outcomes.map(o => {
      const cells = tiers.map(tr => {
        const n = d.requests.by_outcome_tier[o][tr];
        return `<td id="cell-${o}-${tr}" data-value="${n}" class="${n ? "" : "zero"}">${charts.number(n)}</td>`;
      }).join("");
      const n = d.requests.by_outcome[o];
      return `<tr><th>${o}</th>${cells}<td id="cell-${o}-total" data-value="${n}">${charts.number(n)}</td></tr>`;
    }).join("");
    t.tBodies[0].innerHTML = rows;
    const foot = tiers.map(tr => `<td id="cell-total-${tr}" data-value="${d.requests.by_tier[tr]}">${charts.number(d.requests.by_tier[tr])}</td>`).join("");
    t.tFoot.innerHTML = `<tr><th>total</th>${foot}<td id="cell-total-total" data-value="${d.requests.total}">${charts.number(d.requests.total)}</td></tr>`;
  }

  function degradations(list) {
    const ul = $("degradations");
    ul.textContent = "";
    if (!list.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "none: every request was answered normally";
      ul.appendChild(li);
      return;
    }
    for (const e of list) {
      const li = document.createElement("li");
      li.dataset.kind = e.kind;
      li.dataset.count = e.count;
      const kind = document.createElement("span");
      kind.className = "kind" + (e.kind === "breaker_closed" ? " good" : /error|open|fallback/.test(e.kind) ? " bad" : "");
      kind.textContent = e.kind;
      const when = document.createElement("span");
      when.className = "when";
      const first = new Date(e.first), last = new Date(e.last);
      when.textContent = ` ×${charts.number(e.count)}, ` + (e.count > 1 ? `${first.toLocaleTimeString()} – ${last.toLocaleTimeString()}` : first.toLocaleTimeString());
      const detail = document.createElement("div");
      detail.className = "detail";
      detail.textContent = e.detail;
      li.append(kind, when, detail);
      ul.appendChild(li);
    }
  }

  function series(history, now, pick, names) {
    return names.map(n => ({
      name: n, color: charts.colors[n],
      points: history.map(p => [(Date.parse(p.time) - now) / 1000, pick(p)[n]]),
    }));
  }

  function draw(d) {
    const ks = d.keyspace;
    set("keyspace-name", ks.name, ks.name);
    set("keyspace-version", ks.version, ks.version);
    set("keyspace-generation", ks.generation, ks.generation ? String(ks.generation) : "0 (never bumped)");
    set("keyspace-code-version", ks.code_version, ks.code_version);
    const h = d.history, last = h.length ? h[h.length - 1] : null;
    set("requests-total", d.requests.total);
    set("requests-rate", last ? last.requests_per_s : null);
    set("hit-ratio", d.requests.hit_ratio, charts.percent(d.requests.hit_ratio));
    set("hit-ratio-now", last ? last.hit_ratio : null, last && last.requests_per_s > 0 ? charts.percent(last.hit_ratio) : "–");
    if (d.origin) {
      set("origin-rate", last ? last.origin_queries_per_s : null);
      set("origin-total", d.origin.queries);
    } else {
      set("origin-rate", null, "n/a");
      set("origin-total", null, "n/a");
    }
    set("l2-health", d.l2.health, d.l2.health);
    $("l2-health").className = "value health-" + d.l2.health;
    $("l2-health").title = d.l2.ping_error || "";
    set("l2-breaker", d.l2.breaker, d.l2.breaker);
    set("l2-errors", d.l2.errors);
    set("l1-size", d.l1.size);
    set("l1-evictions", d.l1.evictions);
    set("l1-invalidations", d.l1.invalidations);
    table(d);
    degradations(d.degradations);

    const now = Date.parse(d.time);
    // The charts span the history, at least 10 s.
    const oldest = h.length ? (Date.parse(h[0].time) - now) / 1000 - h[0].interval_s : 0;
    const span = { xMin: Math.min(oldest, -10), xMax: 0, xLabel: "seconds ago", xFormat: v => charts.number(-v), empty: "waiting for the first samples" };
    charts.chart($("chart-outcomes"), Object.assign({ stacked: true, series: series(h, now, p => p.by_outcome_per_s, outcomes) }, span));
    charts.chart($("chart-tiers"), Object.assign({ stacked: true, series: series(h, now, p => p.by_tier_per_s, tiers) }, span));
    const markers = h.filter((p, i) => i > 0 && p.breaker !== h[i - 1].breaker)
      .map(p => ({ x: (Date.parse(p.time) - now) / 1000, label: "breaker " + p.breaker }));
    charts.chart($("chart-origin"), Object.assign({
      series: [{ name: "origin queries/s", color: charts.colors.origin, area: true, points: h.map(p => [(Date.parse(p.time) - now) / 1000, p.origin_queries_per_s]) }],
      markers, empty: d.origin ? span.empty : "the origin's queries are not counted here",
    }, span));
    set("updated", d.time, new Date(d.time).toLocaleTimeString());
    document.body.dataset.loaded = "true";
  }

  async function tick() {
    const st = $("status");
    try {
      const r = await fetch("tiercache/data", { cache: "no-store" });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      draw(body);
      st.className = "status";
      st.textContent = "live, every second";
    } catch (e) {
      st.className = "status error";
      st.textContent = "no data: " + e.message;
    }
  }

  tick();
  setInterval(tick, 1000);
})();
