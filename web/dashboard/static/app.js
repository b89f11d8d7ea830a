// Optio's dashboard: shows the current run as the relay pushes it over
// WebSocket, and starts and stops runs through the relay's /function/*.
// No framework and no chart library: the page is small, and the chart is a
// plain canvas bar chart (see drawChart).
"use strict";

(() => {
  const LIMITS = { x: { max: 10_000_000, what: "total jobs" }, y: { max: 1_000_000, what: "jobs per minute" } };
  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat("en-US");
  const el = {
    form: $("run-form"), x: $("x"), y: $("y"), xErr: $("x-error"), yErr: $("y-error"),
    start: $("start"), stop: $("stop"), apiErr: $("api-error"),
    conn: $("conn"), connText: $("conn-text"), state: $("state"), runId: $("run-id"),
    bar: $("bar"), fill: $("bar-fill"), progress: $("progress-text"), percent: $("percent"),
    enqueued: $("enqueued"), processed: $("processed"), failed: $("failed"), cancelled: $("cancelled"),
    rateCfg: $("rate-configured"), rateMeasured: $("rate-measured"), eta: $("eta"), replicas: $("replicas"),
    canvas: $("chart"), caption: $("chart-caption"),
  };

  let run = null;         // the run shown, as the API and the relay describe it
  let throughput = null;  // {start, bucketSeconds, processed[]} from the relay
  let busy = false;       // a Start or Stop request is on its way
  const touched = { x: false, y: false };

  // ---- inputs ---------------------------------------------------------

  // parseCount checks one input against the API's limits and returns
  // {value} or {error}. Spaces, commas and underscores between digits are
  // allowed as thousands separators.
  function parseCount(raw, name) {
    const { max, what } = LIMITS[name];
    const s = raw.trim().replace(/[\s,_]/g, "");
    if (s === "") return { error: `Enter the number of ${what}.` };
    if (/^[+-]?\d*\.\d+$/.test(s) || /^\d+e\d+$/i.test(s)) return { error: "Use a whole number." };
    if (!/^[+-]?\d+$/.test(s)) return { error: `“${raw.trim()}” is not a number.` };
    const n = Number(s);
    if (n < 1) return { error: `Must be at least 1.` };
    if (n > max) return { error: `Must be at most ${fmt.format(max)}.` };
    return { value: n };
  }

  function check(name, show) {
    const input = el[name], err = el[name + "Err"];
    const r = parseCount(input.value, name);
    if (show) {
      err.textContent = r.error || "";
      input.setAttribute("aria-invalid", r.error ? "true" : "false");
    }
    return r;
  }

  for (const name of ["x", "y"]) {
    el[name].addEventListener("input", () => { touched[name] = true; check(name, true); update(); });
    el[name].addEventListener("blur", () => { touched[name] = true; check(name, true); });
  }

  function inputsValid() {
    return !check("x", false).error && !check("y", false).error;
  }

  // ---- buttons and API --------------------------------------------------

  function update() {
    const running = run && run.state === "running";
    el.start.disabled = busy || running || !inputsValid();
    el.stop.disabled = busy || !running;
  }

  function showApiError(msg) {
    el.apiErr.textContent = msg || "";
    el.apiErr.hidden = !msg;
  }

  const TOKEN_KEY = "optio-api-token";
  function withToken(headers) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
  }

  async function call(path, body) {
    busy = true;
    update();
    showApiError("");
    try {
      const send = () => fetch(path, {
        method: "POST",
        headers: withToken(body ? { "Content-Type": "application/json" } : {}),
        body: body ? JSON.stringify(body) : undefined,
      });
      let res = await send();
      if (res.status === 401) {
        // Optio requires its API token (OPTIO_API_TOKEN): ask once, keep it
        // for this tab only.
        const token = window.prompt("This Optio needs its API token:");
        if (token && token.trim()) {
          sessionStorage.setItem(TOKEN_KEY, token.trim());
          res = await send();
        }
      }
      let data = null;
      try { data = await res.json(); } catch { /* not JSON: described below */ }
      if (data && data.state) apply(data, null);
      if (!res.ok) {
        const why = data && data.error ? data.error : `the server answered ${res.status} ${res.statusText}`;
        showApiError(`Refused (${res.status}): ${why}`);
      }
    } catch (e) {
      showApiError(`Could not reach Optio: ${e.message}`);
    } finally {
      busy = false;
      update();
    }
  }

  el.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const x = check("x", true), y = check("y", true);
    if (x.error || y.error) {
      (x.error ? el.x : el.y).focus();
      return;
    }
    if (el.start.disabled) return;
    call("function/run", { x: x.value, y: y.value });
  });
  el.stop.addEventListener("click", () => { if (!el.stop.disabled) call("function/stop"); });

  // ---- state ------------------------------------------------------------

  const RANK = { running: 1, stopped: 2, completed: 2 };
  const rank = (s) => RANK[s] || 0;
  const ms = (t) => (t ? Date.parse(t) : 0);

  // supersedes mirrors the relay's rule: one run never goes back, and
  // another run replaces it only if it started later. It keeps a late
  // answer to Start from undoing newer counters the relay already pushed.
  // failed alone may go down: a job retried from the dead-letter queue
  // moves from failed to processed.
  const done = (r) => r.processed + r.failed + r.cancelled;
  function supersedes(next, cur) {
    if (!cur) return true;
    const id = next.runId || "", curId = cur.runId || "";
    if (id === curId) {
      return !(rank(next.state) < rank(cur.state) || next.enqueued < cur.enqueued ||
        next.processed < cur.processed || next.cancelled < cur.cancelled || done(next) < done(cur));
    }
    if (id === "") return cur.state !== "running";
    if (curId === "") return true;
    return ms(next.startedAt) > ms(cur.startedAt);
  }

  function apply(next, tp) {
    if (!supersedes(next, run)) return;
    const sameRun = run && run.runId === next.runId;
    // Answers of the API lack the relay's measurements: keep the last ones.
    if (sameRun && next.measuredPerMinute === undefined) {
      next = { ...next, measuredPerMinute: run.measuredPerMinute, etaSeconds: run.etaSeconds };
    }
    run = next;
    if (tp) throughput = tp;
    else if (!sameRun) throughput = null;
    render();
  }

  function duration(sec) {
    if (sec == null || !isFinite(sec)) return "–";
    sec = Math.max(0, Math.round(sec));
    if (sec < 60) return `${sec} s`;
    const m = Math.floor(sec / 60), s = sec % 60;
    if (m < 60) return s ? `${m} min ${s} s` : `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  const timeOf = (t) => (t ? new Date(t).toLocaleTimeString() : "");

  function render() {
    const r = run;
    const x = r.xTotal || 0, p = r.processed || 0;
    const pct = x > 0 ? Math.floor((p * 100) / x) : 0;
    el.state.textContent = r.state;
    el.state.dataset.state = r.state;
    if (r.runId) {
      let line = `Run ${r.runId}, started ${timeOf(r.startedAt)}`;
      if (r.finishedAt) line += `, ${r.state} ${timeOf(r.finishedAt)}`;
      el.runId.textContent = line + ".";
    } else {
      el.runId.textContent = "No run yet.";
    }
    el.fill.style.width = `${x > 0 ? (p * 100) / x : 0}%`;
    el.bar.setAttribute("aria-valuenow", String(pct));
    el.bar.setAttribute("aria-valuetext", `${fmt.format(p)} of ${fmt.format(x)} jobs processed, ${pct}%`);
    el.progress.textContent = `${fmt.format(p)} / ${fmt.format(x)}`;
    el.percent.textContent = `${pct}%`;
    el.enqueued.textContent = fmt.format(r.enqueued || 0);
    el.processed.textContent = fmt.format(p);
    el.failed.textContent = fmt.format(r.failed || 0);
    el.cancelled.textContent = fmt.format(r.cancelled || 0);
    el.rateCfg.textContent = r.yPerMinute ? `${fmt.format(r.yPerMinute)} / min` : "–";
    el.rateMeasured.textContent = r.measuredPerMinute == null ? "–" : `${fmt.format(Math.round(r.measuredPerMinute))} / min`;
    el.eta.textContent = r.state === "running" ? duration(r.etaSeconds) : (r.state === "completed" ? "done" : "–");
    update();
    scheduleChart();
  }

  // ---- chart ------------------------------------------------------------

  let chartQueued = false;
  function scheduleChart() {
    if (chartQueued) return;
    chartQueued = true;
    requestAnimationFrame(() => { chartQueued = false; drawChart(); });
  }
  new ResizeObserver(scheduleChart).observe(el.canvas);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", scheduleChart);

  // niceMax rounds v up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // drawChart draws the run's throughput as bars of jobs per second per
  // bucket, with the configured rate as a dashed line.
  function drawChart() {
    const c = el.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (n) => css.getPropertyValue(n).trim();
    g.font = `12px ${getComputedStyle(document.body).fontFamily}`;

    const tp = throughput, width = tp ? tp.bucketSeconds : 1;
    const counts = (tp && tp.processed) || [];
    const perSec = counts.map((n) => n / width);
    const cfg = run && run.yPerMinute ? run.yPerMinute / 60 : 0;
    const top = niceMax(Math.max(1, cfg, ...perSec) * 1.1);
    const left = 52, right = 10, topPad = 10, bottom = 22;
    const pw = w - left - right, ph = h - topPad - bottom;

    // Grid and axis labels.
    g.strokeStyle = color("--line");
    g.fillStyle = color("--muted");
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const f of [0, 0.5, 1]) {
      const y = topPad + ph * (1 - f);
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(w - right, y + 0.5); g.stroke();
      g.fillText(fmt.format(Math.round(top * f)), left - 6, y);
    }
    g.save();
    g.translate(12, topPad + ph / 2); g.rotate(-Math.PI / 2);
    g.textAlign = "center"; g.fillText("jobs/s", 0, 0);
    g.restore();

    // Bars: as many slots as buckets, at least 30 so a short run is not one fat bar.
    const slots = Math.max(30, counts.length);
    const bw = pw / slots;
    g.fillStyle = color("--accent");
    perSec.forEach((v, i) => {
      const bh = (v / top) * ph;
      g.fillRect(left + i * bw + bw * 0.1, topPad + ph - bh, Math.max(1, bw * 0.8), bh);
    });

    // Configured rate.
    if (cfg > 0) {
      const y = topPad + ph * (1 - cfg / top);
      g.strokeStyle = color("--warn");
      g.setLineDash([5, 4]);
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(w - right, y + 0.5); g.stroke();
      g.setLineDash([]);
    }

    // Time axis: the start and the end of the slots, relative to the start.
    g.fillStyle = color("--muted");
    g.textBaseline = "top";
    g.textAlign = "left";
    g.fillText(counts.length ? timeOf(tp.start) : "", left, h - bottom + 6);
    g.textAlign = "right";
    g.fillText(`+${duration(slots * width)}`, w - right, h - bottom + 6);

    const peak = perSec.length ? Math.max(...perSec) : 0;
    const last = perSec.length ? perSec[perSec.length - 1] : 0;
    const summary = perSec.length
      ? `Throughput chart: ${perSec.length} intervals of ${duration(width)}; peak ${fmt.format(Math.round(peak))} jobs per second, latest ${fmt.format(Math.round(last))}; configured ${fmt.format(Math.round(cfg))} per second.`
      : "Throughput chart: no data yet.";
    el.canvas.setAttribute("aria-label", summary);
    el.caption.textContent = width > 1
      ? `Jobs processed per second, averaged over ${duration(width)} intervals; dashed line: configured rate.`
      : "Jobs processed per second; dashed line: configured rate.";
  }

  // ---- live connection ----------------------------------------------------

  let attempt = 0, countdown = null, timer = null;

  function setConn(state, text) {
    el.conn.dataset.conn = state;
    el.connText.textContent = text;
  }

  function connect() {
    clearInterval(countdown);
    clearTimeout(timer);
    setConn("connecting", "Connecting…");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${location.pathname.replace(/[^/]*$/, "")}ws`;
    let ws;
    try { ws = new WebSocket(url); } catch (e) { retry(); return; }
    let got = false;
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type !== "state" || !m.run) return;
      if (!got) { got = true; attempt = 0; setConn("open", "Live"); }
      apply(m.run, m.throughput);
    };
    ws.onclose = () => retry();
  }

  // retry reconnects after a growing, jittered delay (0.5 s doubling up to
  // 10 s), counting down on screen. The next snapshot catches the page up.
  function retry() {
    const base = Math.min(10_000, 500 * 2 ** attempt);
    attempt++;
    let left = Math.round(base * (0.5 + Math.random() / 2));
    const until = Date.now() + left;
    const tick = () => {
      left = Math.max(0, until - Date.now());
      setConn("closed", `Disconnected, reconnecting in ${Math.ceil(left / 1000)} s`);
    };
    tick();
    clearInterval(countdown);
    countdown = setInterval(tick, 500);
    timer = setTimeout(connect, left);
  }

  // ---- process replicas ---------------------------------------------------

  // The relay pushes counters, not replicas: status reports how many
  // replicas of process are ready (autoscaling moves it), so the page asks it
  // every 2 s while it is visible. "–" when it cannot tell.
  async function pollReplicas() {
    if (!document.hidden) {
      let n;
      try {
        const res = await fetch("function/status", { headers: withToken({}) });
        if (res.ok) n = (await res.json()).processReplicas;
      } catch { /* shown as unknown */ }
      el.replicas.textContent = Number.isInteger(n) && n >= 0 ? fmt.format(n) : "–";
    }
    setTimeout(pollReplicas, 2000);
  }

  window.addEventListener("online", () => { if (el.conn.dataset.conn === "closed") { attempt = 0; connect(); } });

  update();
  connect();
  pollReplicas();
})();
