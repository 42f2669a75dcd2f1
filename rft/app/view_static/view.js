// rft view: the page. Every string from the data (prompts, completions, grades, ids) reaches the DOM as a
// text node (el() below, textContent): never as HTML. The server's Content-Security-Policy allows no inline
// script either.
"use strict";

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const CHARTS = [
  ["Reward", (k) => /^reward\//.test(k)],
  ["Held-out accuracy", (k) => /^eval\//.test(k) && !/failed_rate$/.test(k)],
  ["Grader failure rates", (k) => /^grader\/.*_rate$/.test(k) || k === "eval/failed_rate"],
  ["Response length", (k) => /completion_len|response_len|overlong_frac|rollout\/turns/.test(k)],
  ["Entropy / KL", (k) => /entropy|(^|[/_])kl($|[/_])|approx_kl/.test(k)],
  ["Loss", (k) => /^loss\/(policy|sft|dpo|value)$/.test(k)],
];
const state = { tree: null, tab: "curves", roll: { cursors: [0] }, evalSel: null, cmpSel: null };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of kids.flat()) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : String(c)); // a string is appended as a text node
  }
  return e;
}

function swatch(color) {
  const i = el("i", {});
  i.style.background = color; // CSSOM: the page's CSP refuses style attributes
  return i;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text != null) e.textContent = String(text);
  return e;
}

async function api(name, params) {
  const res = await fetch(`/api/${name}?${new URLSearchParams(params || {})}`);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function showError(err) {
  const p = document.getElementById("error");
  p.textContent = err ? String(err.message || err) : "";
  p.hidden = !err;
}

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, "");
  if (v == null) return "";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function text(v) {
  if (v == null) return "";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.map((m) => (m && typeof m === "object" ? m.content ?? "" : String(m))).join("\n");
  return JSON.stringify(v);
}

// ---------- curves ----------

function chart(title, runs, keys, tree) {
  const W = 460, H = 220, L = 48, R = 10, T = 16, B = 26;
  let xmax = 1, ymin = Infinity, ymax = -Infinity;
  for (const run of runs) {
    xmax = Math.max(xmax, run.offset + run.steps);
    for (const k of keys) for (const [, y] of run.series[k] || []) { ymin = Math.min(ymin, y); ymax = Math.max(ymax, y); }
  }
  if (ymin === ymax) { ymin -= 0.5; ymax += 0.5; }
  const X = (x) => L + (x / xmax) * (W - L - R), Y = (y) => T + (1 - (y - ymin) / (ymax - ymin)) * (H - T - B);
  const s = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-title": title });
  s.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  s.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  for (let i = 0; i <= 4; i++) {
    const y = ymin + ((ymax - ymin) * i) / 4, x = (xmax * i) / 4;
    s.append(svg("text", { x: L - 4, y: Y(y) + 3, "text-anchor": "end" }, fmt(Number(y.toPrecision(3)))));
    s.append(svg("text", { x: X(x), y: H - B + 14, "text-anchor": "middle" }, String(Math.round(x))));
  }
  if (runs.length > 1 || (tree && tree.stages.length)) {
    for (const run of runs) {
      s.append(svg("line", { class: "stage", x1: X(run.offset), y1: T, x2: X(run.offset), y2: H - B }));
      s.append(svg("text", { class: "stage-label", x: X(run.offset) + 3, y: T - 4 }, run.name));
    }
  }
  keys.forEach((k, i) => {
    for (const run of runs) {
      const pts = run.series[k];
      if (!pts || !pts.length) continue;
      const color = COLORS[i % COLORS.length];
      const attr = { "data-key": k, fill: "none", stroke: color, "stroke-width": 1.5 };
      if (pts.length === 1) {
        s.append(svg("circle", { ...attr, fill: color, cx: X(run.offset + pts[0][0]), cy: Y(pts[0][1]), r: 3 }));
      } else {
        const line = svg("polyline", { ...attr, points: pts.map(([x, y]) => `${X(run.offset + x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ") });
        line.append(svg("title", {}, `${run.name}: ${k}`));
        s.append(line);
      }
    }
  });
  const legend = el("div", { class: "legend" }, keys.map((k, i) => el("span", {}, swatch(COLORS[i % COLORS.length]), k)));
  return el("div", { class: "chart-box" }, el("h3", {}, title), s, legend);
}

async function showCurves() {
  const sec = document.getElementById("curves");
  const runs = await api("curves");
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.series)))].sort();
  const boxes = [];
  for (const [title, pick] of CHARTS) {
    const ks = keys.filter(pick);
    if (ks.length) boxes.push(chart(title, runs, ks.slice(0, 8), state.tree));
  }
  const pick = el("select", { id: "metric" }, el("option", { value: "" }, "another metric..."), keys.map((k) => el("option", { value: k }, k)));
  const extra = el("div", { class: "charts" });
  pick.addEventListener("change", () => { extra.replaceChildren(pick.value ? chart(pick.value, runs, [pick.value], state.tree) : ""); });
  sec.replaceChildren(
    runs.length ? el("p", { class: "muted" }, `${runs.map((r) => `${r.name}: ${r.steps} steps`).join(", ")}`) : el("p", {}, "No metrics.jsonl in this folder."),
    el("div", { class: "charts" }, boxes), el("div", { class: "controls" }, pick), extra);
}

// ---------- a row's details (rollouts and evaluation samples) ----------

function highlighted(content, needle) {
  const pre = el("pre", {});
  const at = needle ? content.lastIndexOf(needle) : -1;
  if (at < 0) { pre.textContent = content; return pre; }
  pre.append(content.slice(0, at), el("mark", { class: "extracted", title: "the extracted answer" }, needle), content.slice(at + needle.length));
  return pre;
}

function messages(list, extracted) {
  if (typeof list === "string") return [el("div", { class: "msg" }, highlighted(list, extracted))];
  if (!Array.isArray(list)) return [el("pre", {}, fmt(list))];
  let last = -1;
  list.forEach((m, i) => { if (m && m.role === "assistant") last = i; });
  return list.map((m, i) => el("div", { class: "msg" },
    el("span", { class: `role role-${m.role}` }, m.role || "?"),
    highlighted(typeof m.content === "string" ? m.content : fmt(m.content), i === last ? extracted : ""),
    m.tool_calls ? el("pre", { class: "tool-calls" }, JSON.stringify(m.tool_calls, null, 2)) : null));
}

function gradeView(grade) {
  if (!grade) return [el("p", { class: "muted" }, "no grade recorded")];
  const out = [el("table", { class: "data grade" },
    ["status", "score", "passed", "extracted"].map((k) => el("tr", {}, el("th", {}, k), el("td", { class: k === "status" ? `status-${grade.status}` : "" }, fmt(grade[k])))))];
  const d = grade.details || {};
  for (const [k, v] of Object.entries(d)) {
    if (k === "tests" && Array.isArray(v)) {
      out.push(el("h4", {}, `tests (${v.filter((t) => t.passed).length}/${v.length} passed)`),
        el("table", { class: "data tests" }, el("tr", {}, el("th", {}, "test"), el("th", {}, "passed"), el("th", {}, "error")),
          v.map((t) => el("tr", {}, el("td", {}, el("pre", {}, fmt(t.test))), el("td", { class: t.passed ? "passed" : "failed" }, t.passed ? "yes" : "no"), el("td", {}, el("pre", {}, fmt(t.error)))))));
    } else {
      out.push(el("div", { class: "detail-item" }, el("strong", {}, k), typeof v === "object" && v !== null ? el("pre", {}, JSON.stringify(v, null, 2)) : el("pre", {}, fmt(v))));
    }
  }
  return out;
}

function detail(row) {
  const grade = row.grade || null;
  const extracted = grade && typeof grade.extracted === "string" ? grade.extracted : "";
  const head = ["id", "step", "group", "suite", "sample", "reward", "status"].filter((k) => row[k] != null).map((k) => `${k} ${fmt(row[k])}`).join(" · ");
  return el("div", { class: "detail", id: "detail" },
    el("h3", {}, head),
    row._error ? el("p", { class: "error" }, row._error) : null,
    el("h4", {}, "Prompt"), messages(row.messages ?? row.prompt ?? "", ""),
    el("h4", {}, "Completion"), messages(row.completion ?? "", extracted),
    el("h4", {}, "Grade"), gradeView(grade),
    row.heldout_grade ? [el("h4", {}, "Held-out grade"), gradeView(row.heldout_grade)] : null,
    el("h4", {}, "Reference"), el("pre", { class: "reference" }, fmt(row.reference)));
}

function rowsTable(rows, cols, onpick) {
  const t = el("table", { class: "data rows" }, el("tr", {}, cols.map(([name]) => el("th", {}, name))));
  for (const r of rows) {
    const tr = el("tr", { class: "row", "data-line": r.line }, cols.map(([, get, cls]) => el("td", { class: typeof cls === "function" ? cls(r) : cls || "" }, fmt(get(r)))));
    tr.addEventListener("click", () => { for (const x of t.querySelectorAll("tr.selected")) x.classList.remove("selected"); tr.classList.add("selected"); onpick(r); });
    t.append(tr);
  }
  return t;
}

const ROW_COLS = [
  ["line", (r) => r.line + 1], ["step", (r) => r.step], ["id", (r) => r.id], ["reward", (r) => r.reward],
  ["status", (r) => r.status ?? (r.grade || {}).status, (r) => `status-${r.status ?? (r.grade || {}).status}`],
  ["extracted", (r) => (r.grade || {}).extracted, "text"], ["completion", (r) => text(r.completion), "text"],
  ["reference", (r) => r.reference, "text"],
];

// ---------- rollouts ----------

function control(label, input) { return el("label", {}, `${label} `, input); }

async function showRollouts(keep) {
  const sec = document.getElementById("rollouts");
  const runs = state.tree.runs.filter((r) => r.rollouts);
  if (!runs.length) { sec.replaceChildren(el("p", {}, "No rollouts.jsonl with rows in this folder.")); return; }
  const R = state.roll;
  if (!keep || !R.form) {
    const f = {
      run: el("select", { id: "f-run" }, runs.map((r) => el("option", { value: r.path }, r.path === "." ? r.name : r.path))),
      step: el("select", { id: "f-step" }),
      status: el("select", { id: "f-status" }, ["", "ok", "no_answer", "timeout", "error"].map((s) => el("option", { value: s }, s || "any"))),
      reward_min: el("input", { id: "f-reward-min", type: "number", step: "any" }),
      reward_max: el("input", { id: "f-reward-max", type: "number", step: "any" }),
      suite: el("input", { id: "f-suite", size: 12 }),
      q: el("input", { id: "f-q", type: "search", placeholder: "text in prompt, completion, answer" }),
      heldout: el("input", { id: "f-heldout", type: "checkbox" }),
    };
    const apply = () => { R.cursors = [0]; loadRows(); };
    f.run.addEventListener("change", () => { R.steps = null; f.step.replaceChildren(); apply(); });
    for (const k of ["step", "status", "heldout"]) f[k].addEventListener("change", apply);
    for (const k of ["reward_min", "reward_max", "suite", "q"]) f[k].addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); });
    R.form = f;
    R.table = el("div", {});
    R.pager = el("div", { class: "pager" });
    R.detail = el("div", {}, el("p", { class: "muted" }, "Click a row to see its prompt, completion, grade and reference."));
    sec.replaceChildren(
      el("div", { class: "controls" }, control("run", f.run), control("step", f.step), control("status", f.status),
        control("reward ≥", f.reward_min), control("reward ≤", f.reward_max), control("suite", f.suite), control("search", f.q),
        el("label", { title: "rows the training reward scored 1 that the held-out suite's grader fails (graded again here unless the row carries a heldout_grade)" }, f.heldout, " passed the reward, failed the held-out grader"),
        el("button", { id: "f-apply", onclick: apply }, "Apply")),
      el("div", { class: "split" }, el("div", {}, R.pager, R.table), R.detail));
  }
  await loadRows(true);
}

async function loadRows(withSteps) {
  const R = state.roll, f = R.form;
  const params = { file: `${f.run.value}/rollouts.jsonl`, cursor: R.cursors[R.cursors.length - 1], limit: 50 };
  if (withSteps || !R.steps) params.steps = "1";
  const step = f.step.value;
  if (step !== "all" && step !== "") params.step = step;
  for (const k of ["status", "reward_min", "reward_max", "suite", "q"]) if (f[k].value !== "") params[k] = f[k].value;
  if (f.heldout.checked) params.heldout_failed = "1";
  const page = await api("rows", params);
  if (page.steps) {
    const had = f.step.value, steps = page.steps;
    R.steps = steps;
    f.step.replaceChildren(el("option", { value: "all" }, "all steps"), ...steps.map((s) => el("option", { value: s }, String(s))));
    f.step.value = had && (had === "all" || steps.includes(Number(had))) ? had : steps.length ? String(steps[steps.length - 1]) : "all";
    if (f.step.value !== step && !(step === "" && f.step.value === "all")) return loadRows(false);
  }
  R.table.replaceChildren(rowsTable(page.rows, ROW_COLS, (r) => R.detail.replaceChildren(detail(r))));
  const prev = el("button", { id: "prev", onclick: () => { R.cursors.pop(); loadRows(); } }, "◀ previous");
  prev.disabled = R.cursors.length < 2;
  const next = el("button", { id: "next", onclick: () => { R.cursors.push(page.next); loadRows(); } }, "next ▶");
  next.disabled = page.next == null;
  R.pager.replaceChildren(prev, next, el("span", { class: "muted", id: "page-info" },
    `${page.rows.length} rows shown; ${page.scanned} of ${page.candidates} lines scanned from ${R.cursors[R.cursors.length - 1]}; ${page.indexed} lines indexed`),
    ...(page.heldout_note ? [el("span", { class: "muted", id: "heldout-note" }, `(${page.heldout_note})`)] : []));
}

// ---------- evaluations and comparisons ----------

function sortable(rows, cols, onpick, id) {
  let key = null, dir = 1;
  const box = el("div", { id });
  const draw = () => {
    const sorted = key == null ? rows : [...rows].sort((a, b) => { const x = a[key], y = b[key]; return (x > y ? 1 : x < y ? -1 : 0) * dir; });
    const t = rowsTable(sorted, cols.map((c) => [c, (r) => r[c]]), onpick);
    t.querySelectorAll("th").forEach((th, i) => th.addEventListener("click", () => { dir = key === cols[i] ? -dir : 1; key = cols[i]; draw(); }));
    box.replaceChildren(t);
  };
  draw();
  return box;
}

async function samplesOf(evalPath, id, into) {
  if (!evalPath) { into.replaceChildren(el("p", { class: "muted" }, "its evaluation folder is not under this folder")); return; }
  const page = await api("rows", { file: `${evalPath}/samples.jsonl`, id, limit: 100 });
  const detailBox = el("div", {});
  into.replaceChildren(el("h4", {}, `${evalPath}: samples of ${id}`),
    rowsTable(page.rows, [["sample", (r) => r.sample], ["reward", (r) => r.reward], ["status", (r) => r.status, (r) => `status-${r.status}`], ["extracted", (r) => (r.grade || {}).extracted, "text"], ["completion", (r) => text(r.completion), "text"]],
      (r) => detailBox.replaceChildren(detail(r))), detailBox);
  if (page.rows.length === 1) detailBox.replaceChildren(detail(page.rows[0]));
}

async function showEvals() {
  const sec = document.getElementById("evals");
  const evals = state.tree.evals;
  if (!evals.length) { sec.replaceChildren(el("p", {}, "No evaluation folder (problems.jsonl) here.")); return; }
  const pick = el("select", { id: "eval-pick" }, evals.map((e) => el("option", { value: e.path }, e.path === "." ? e.name : e.path)));
  if (state.evalSel) pick.value = state.evalSel;
  const body = el("div", {});
  const load = async () => {
    state.evalSel = pick.value;
    const data = await api("eval", { path: pick.value });
    const side = el("div", { class: "detail" }, el("p", { class: "muted" }, "Click a problem to see its samples and their grades."));
    const res = (data.results && data.results.results) || [];
    const cols = data.problems.length ? Object.keys(data.problems[0]).filter((k) => !["passes", "suite", "split"].includes(k)) : [];
    body.replaceChildren(
      el("table", { class: "data results" }, el("tr", {}, ["suite", "split", "metric", "value", "95% CI", "problems"].map((h) => el("th", {}, h))),
        res.map((r) => el("tr", {}, [r.suite, r.split, r.metric, r.value, (r.ci95 || []).map(fmt).join(" .. "), r.n_problems].map((v) => el("td", {}, fmt(v)))))),
      el("h3", {}, `Per problem (${data.problems.length}); click a column to sort`),
      el("div", { class: "split" }, sortable(data.problems, cols, (p) => samplesOf(pick.value, String(p.id), side), "problems"), side));
  };
  pick.addEventListener("change", () => load().catch(showError));
  sec.replaceChildren(el("div", { class: "controls" }, control("evaluation", pick)), body);
  await load();
}

async function showCompare() {
  const sec = document.getElementById("compare");
  const cmps = state.tree.compares;
  if (!cmps.length) { sec.replaceChildren(el("p", {}, "No comparison (compare.json from rft compare) here.")); return; }
  const pick = el("select", { id: "cmp-pick" }, cmps.map((c) => el("option", { value: c.path }, c.path === "." ? c.name : c.path)));
  if (state.cmpSel) pick.value = state.cmpSel;
  const body = el("div", {});
  const load = async () => {
    state.cmpSel = pick.value;
    const data = await api("compare", { path: pick.value });
    const parts = [];
    for (const c of data.comparisons || []) {
      const a = el("div", { class: "detail" }), b = el("div", { class: "detail" });
      const only = el("select", {}, [["all", "all problems"], ["diff", "where they differ"], ["b", "B better"], ["a", "A better"]].map(([v, l]) => el("option", { value: v }, l)));
      const tableBox = el("div", {});
      const draw = () => {
        const keep = { all: () => true, diff: (p) => p.diff !== 0, b: (p) => p.diff > 0, a: (p) => p.diff < 0 }[only.value];
        tableBox.replaceChildren(sortable((c.per_problem || []).filter(keep), ["id", "a", "b", "diff"], (p) => {
          samplesOf(data.a_eval, String(p.id), a).catch(showError);
          samplesOf(data.b_eval, String(p.id), b).catch(showError);
        }, "paired"));
      };
      only.addEventListener("change", draw);
      draw();
      parts.push(el("h3", {}, `${c.suite} ${c.split}: A ${fmt(c.a)} vs B ${fmt(c.b)}`), el("p", { class: "verdict" }, c.verdict || ""),
        el("div", { class: "controls" }, control("show", only)),
        el("div", { class: "split" }, tableBox, el("div", {}, el("strong", {}, "A"), a, el("strong", {}, "B"), b)));
    }
    body.replaceChildren(...parts);
  };
  pick.addEventListener("change", () => load().catch(showError));
  sec.replaceChildren(el("div", { class: "controls" }, control("comparison", pick)), body);
  await load();
}

// ---------- tabs ----------

const SHOW = { curves: showCurves, rollouts: showRollouts, evals: showEvals, compare: showCompare };

async function show(tab, keep) {
  state.tab = tab;
  if (location.hash !== `#${tab}`) history.replaceState(null, "", `#${tab}`);
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("main section")) s.hidden = s.id !== tab;
  showError(null);
  try {
    await SHOW[tab](keep);
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = tab; // tests wait for this
}

async function start() {
  try {
    state.tree = await api("tree");
  } catch (err) {
    showError(err);
    return;
  }
  const t = state.tree;
  document.getElementById("where").textContent = `${t.kind}: ${t.root}`;
  document.title = `rft view: ${t.name}`;
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
  document.getElementById("refresh").addEventListener("click", async () => { state.tree = await api("tree"); show(state.tab, true); });
  let timer = null;
  document.getElementById("live").addEventListener("change", (e) => {
    clearInterval(timer);
    if (e.target.checked) timer = setInterval(() => show(state.tab, true), 5000);
  });
  window.addEventListener("hashchange", () => {
    const tab = location.hash.slice(1);
    if (SHOW[tab] && tab !== state.tab) show(tab);
  });
  const want = location.hash.slice(1);
  show(SHOW[want] ? want : t.runs.length ? "curves" : t.evals.length ? "evals" : "compare");
}

document.addEventListener("DOMContentLoaded", start);
