// The live experiment page: polls /experiment/status and redraws its tables.
"use strict";

const $ = (id) => document.getElementById(id);
const METRICS = { hit_rate: "hit rate@5", ctr: "CTR", likes: "likes per user" };
const REFRESH_MS = 3000;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function fill(table, rows) {
  const body = $(table).querySelector("tbody");
  body.replaceChildren(...rows.map((values) => {
    const tr = document.createElement("tr");
    tr.append(...values.map(cell));
    return tr;
  }));
}

const fixed = (value, digits = 4) => (value === null || value === undefined ? "–" : value.toFixed(digits));
const interval = (m) => (m.low === null ? `${fixed(m.mean)} (one user)` : `${fixed(m.mean)} [${fixed(m.low)}, ${fixed(m.high)}]`);
const signed = (value) => (value >= 0 ? "+" : "") + fixed(value);

function render(status) {
  const router = status.router;
  $("router-meta").textContent = `salt "${router.salt}", in force since ${router.loaded_at}` +
    (router.last_error ? `; last rejected edit: ${router.last_error}` : "");
  fill("router", router.groups.map((g) => [g.name, `${g.buckets[0]}–${g.buckets[1]}`,
    `${(100 * g.share).toFixed(0)}%`, g.model, String(g.version)]));
  fill("groups", status.groups.map((g) => [g.name, g.users.toLocaleString(), g.exposures.toLocaleString(),
    interval(g.metrics.hit_rate), interval(g.metrics.ctr), interval(g.metrics.likes)]));
  $("control").textContent = status.control || "control";
  fill("comparisons", status.comparisons.map((c) => [c.group, METRICS[c.metric],
    c.welch ? `${signed(c.welch.difference)} [${signed(c.welch.low)}, ${signed(c.welch.high)}]` : "needs 2 users per group",
    c.welch ? c.welch.p_value.toPrecision(3) : "–"]));
  const srm = status.srm;
  $("srm").className = srm && srm.alarm ? "alarm" : "ok";
  $("srm").textContent = !srm ? "Split not checked yet."
    : `${srm.alarm ? "SAMPLE RATIO MISMATCH: do not trust the differences" : "Split check ok"}: users ${Object.entries(srm.observed).map(([k, v]) => `${k} ${v}`).join(", ")}, ` +
      `expected ${Object.entries(srm.expected).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}; ` +
      `chi2 = ${srm.chi2.toFixed(2)}, p = ${srm.p_value.toPrecision(3)}`;
  $("notes").replaceChildren(...(status.notes || []).map((n) => {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = `note: ${n}`;
    return p;
  }));
  $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}: likes count within ${status.window_s / 3600} h of the exposure.`;
}

async function refresh() {
  try {
    const response = await fetch("/experiment/status");
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    render(body);
    $("error").hidden = true;
  } catch (error) {
    $("error").textContent = `Could not refresh: ${error.message}`;
    $("error").hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
