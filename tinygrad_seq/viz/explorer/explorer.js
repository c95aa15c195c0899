// The explorer page's behaviour: replays the steps recorded by viz.explore (window.EXPLORER_DATA).
// Each step lights up the SVG nodes that show its tensor (class "current"), marks the steps before it
// ("done"), and fills the panel: the gradient arriving, its terms, the local rule, what goes where,
// the shared weights' running gradients and the chart of ‖∂L/∂a⟨t⟩‖.
"use strict";
(function () {
  const DATA = window.EXPLORER_DATA;
  const $ = (id) => document.getElementById(id);
  const svg = document.querySelector("#graph svg");
  const pane = $("graph");

  // Graphviz writes each node's and edge's DOT id in its <title>: "n12", "n12->n13". Two edges
  // between the same nodes (a tensor used twice by one op) share an id: an edge id maps to all its elements.
  const nodes = new Map();
  const edges = new Map();
  for (const g of svg.querySelectorAll("g.node")) nodes.set(g.querySelector("title").textContent, g);
  for (const g of svg.querySelectorAll("g.edge")) {
    const id = g.querySelector("title").textContent;
    edges.set(id, [...(edges.get(id) || []), g]);
  }

  let mode = "backward";
  let index = 0;
  let timer = null;
  let zoom = 1;
  const box = svg.viewBox.baseVal;
  const natural = { width: box && box.width ? box.width : svg.getBBox().width, height: box && box.height ? box.height : svg.getBBox().height };

  const steps = () => (mode === "backward" ? DATA.backward : DATA.forward);
  const HELP = {
    backward: "← → step · Home End first, last · space play/pause · click a node: its step · #step=N in the address opens step N · " +
      "orange: the current node, and the edges carrying the gradients it sends · grey: done · light grey: partly done",
    forward: "← → step · Home End first, last · space play/pause · click a node: its step · #mode=forward&step=N opens step N · " +
      "orange: the node computed now, and the edges bringing its inputs · grey: computed",
  };

  // The last step (per mode) at which each drawn node is touched: a node is done once that step is past.
  function touchesOf(list) {
    const last = new Map();
    const first = new Map();
    list.forEach((step, i) => {
      for (const id of step.drawn) {
        last.set(id, i);
        if (!first.has(id)) first.set(id, i);
      }
    });
    return { first, last };
  }
  const touches = { backward: touchesOf(DATA.backward), forward: touchesOf(DATA.forward) };

  // Tooltips: Graphviz's <title>s hold DOT ids ("n12"), which a browser would show on hover. Once the maps
  // above have read them, each says what the node is (its drawn lines, else the name the steps give it) and,
  // in the mode shown, that a click goes to its step (markSteppable); the id stays on the element as data-key.
  const stepName = new Map();
  for (const step of [...DATA.backward, ...DATA.forward]) for (const id of step.drawn) if (!stepName.has(id)) stepName.set(id, step.name);
  const described = (id) => {
    const lines = [...nodes.get(id).querySelectorAll("text")].map((t) => t.textContent.trim()).filter(Boolean);
    return lines.length ? lines : [stepName.get(id) || "a node of the graph"];
  };
  for (const [id, g] of nodes) g.dataset.key = id;
  for (const [id, list] of edges) {
    const [tail, head] = id.split("->");
    for (const g of list) {
      g.dataset.key = id;
      if (nodes.has(tail) && nodes.has(head)) g.querySelector("title").textContent = described(tail)[0] + " → " + described(head)[0];
    }
  }

  function markSteppable() {
    for (const [id, g] of nodes) {
      const reached = touches[mode].first.has(id);
      g.classList.toggle("steppable", reached);
      g.querySelector("title").textContent = described(id).join(" · ") + (reached ? "\nclick: go to its step" : "");
    }
  }

  // How many numbers a recorded value holds (null: too many to record; a number: a 0-d tensor).
  const count = (values) => (values === null ? Infinity : Array.isArray(values) ? values.flat(Infinity).length : 1);

  function element(tag, text, className) {
    const el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    if (className) el.className = className;
    return el;
  }

  function shown(target, value) {
    target.textContent = value.text;
    target.dataset.norm = String(value.norm);
    target.dataset.shape = JSON.stringify(value.shape);
    if (value.values === null) delete target.dataset.values;
    else target.dataset.values = JSON.stringify(value.values);
  }

  function paintGraph(step) {
    for (const g of nodes.values()) g.classList.remove("done", "current", "partial");
    for (const list of edges.values()) for (const g of list) g.classList.remove("sending");
    const { first, last } = touches[mode];
    for (const [id, g] of nodes) {
      if (!first.has(id)) continue;
      if (last.get(id) < index) g.classList.add("done");
      else if (first.get(id) < index) g.classList.add("partial");
    }
    for (const id of step.drawn) {
      const g = nodes.get(id);
      if (g) {
        g.classList.remove("done", "partial");
        g.classList.add("current");
      }
    }
    const lit = mode === "backward" ? step.sends.flatMap((s) => s.edges) : step.edges || [];
    for (const [tail, head] of lit) for (const g of edges.get(tail + "->" + head) || []) g.classList.add("sending");
  }

  function keepInView(step) {
    const g = step.drawn.map((id) => nodes.get(id)).find(Boolean);
    if (!g) return;
    const r = g.getBoundingClientRect();
    const p = pane.getBoundingClientRect();
    const margin = 40;
    if (r.left < p.left + margin || r.right > p.right - margin) pane.scrollLeft += (r.left + r.right) / 2 - (p.left + p.right) / 2;
    if (r.top < p.top + margin || r.bottom > p.bottom - margin) pane.scrollTop += (r.top + r.bottom) / 2 - (p.top + p.bottom) / 2;
  }

  function paintBackward(step) {
    $("grad-block").hidden = false;
    $("value-block").hidden = true;
    $("sends-block").hidden = false;
    $("grad-title").textContent = step.gradient + " arriving (complete)";  // ∂L/∂(1 − Γu⟨3⟩), bracketed as in the rules
    shown($("grad"), step.grad);
    const sum = $("sum");
    sum.replaceChildren();
    if (step.sum.length > 1) {
      sum.append(element("div", "the sum of " + step.sum.length + " contributions:", "term"));
      step.sum.forEach((term, i) => {
        const line = element("div", undefined, "term");
        line.append(element("b", (i ? "+ " : "  ") + term.from + ": "), element("span", term.text));
        sum.append(line);
      });
    }
    const rule = $("rule");
    rule.replaceChildren(...step.rule.map((line) => element("div", line)));
    $("forward-rule").textContent = "forward: " + step.forward;
    const sends = $("sends");
    sends.replaceChildren();
    for (const s of step.sends) {
      const row = element("tr");
      const to = element("td", "→ " + s.gradient, "to");
      const value = element("td");
      const pre = element("pre");
      shown(pre, s);
      value.append(pre);
      row.append(to, value);
      sends.append(row);
    }
    if (!step.sends.length) {
      const row = element("tr");
      row.append(element("td", "nothing: no input needs a gradient"));
      sends.append(row);
    }
    paintParams();
  }

  function paintForward(step) {
    $("grad-block").hidden = true;
    $("value-block").hidden = false;
    $("sends-block").hidden = true;
    shown($("value"), step.value);
    $("forward-rule").textContent = "";
    $("rule").replaceChildren(element("div", step.formula));
    paintParams();
  }

  function paintParams() {
    const target = $("params");
    target.replaceChildren();
    $("params-block").hidden = DATA.params.length === 0 || mode !== "backward";
    for (const param of DATA.params) {
      const block = element("div", undefined, "param");
      const name = element("div", undefined, "name");
      name.append(element("span", "∂L/∂" + param.symbol + " "), element("small", param.name));
      block.append(name);
      const arrived = mode === "backward" ? param.steps.filter((s) => s.step <= index) : [];
      if (!arrived.length) {
        block.append(element("div", mode === "backward" ? "0 (no contribution yet)" : "(backward mode shows it)", "none"));
      } else {
        const latest = arrived[arrived.length - 1];
        const pre = element("pre");
        shown(pre, latest.running);
        pre.classList.add("running");
        block.append(pre);
        const list = element("ol");
        for (const s of arrived) {
          const amount = count(s.contribution.values) <= 3 ? s.contribution.text : "‖·‖ = " + s.contribution.norm.toPrecision(4);
          const item = element("li", "+ " + (s.where || "outside the time steps") + ": " + amount);
          if (s.step === index) item.className = "new";
          list.append(item);
        }
        block.append(list);
      }
      target.append(block);
    }
  }

  function paintChart() {
    const chart = $("chart");
    chart.replaceChildren();
    const ns = "http://www.w3.org/2000/svg";
    const make = (tag, attributes, text) => {
      const el = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, String(v));
      if (text !== undefined) el.textContent = text;
      chart.append(el);
      return el;
    };
    const series = DATA.flow;
    const parts = [...new Set(series.map((s) => s.order[2]))];  // the state parts drawn: a, and c for an LSTM
    if (parts.length) $("chart-title").textContent = parts.map((p) => "‖∂L/∂" + p + "⟨t⟩‖").join(", ") +
      " per time step, filled in as backward reaches each state";
    if (!series.length) {
      make("text", { x: 10, y: 30, "font-size": 12, fill: "#777" }, "no recurrent states in this graph");
      return;
    }
    const all = series.flatMap((s) => s.points);
    const T = Math.max(...all.map((p) => p.t));
    const positive = all.map((p) => p.norm).filter((v) => v > 0 && isFinite(v));
    const top = positive.length ? Math.max(...positive) : 1;
    const least = positive.length ? Math.min(...positive) : 1;
    const logScale = top / least > 100;
    const bottom = logScale ? least / 4 : 0; // on a log scale the smallest norm keeps a visible bar
    const perRow = 4;
    const legendRows = Math.ceil(series.length / perRow);
    const [left, right, upper, lower] = [56, 750, 8 + 13 * legendRows, 132];
    const x = (t) => left + ((t - 0.5) / T) * (right - left);
    const y = (v) => {
      if (!(v > 0) || !isFinite(v)) return lower;
      const f = logScale ? Math.log(v / bottom) / Math.log(top / bottom) : v / top;
      return lower - f * (lower - upper);
    };
    make("line", { x1: left, y1: lower, x2: right, y2: lower, stroke: "#999" });
    make("line", { x1: left, y1: upper, x2: left, y2: lower, stroke: "#999" });
    make("text", { x: 2, y: upper + 8, "font-size": 11, fill: "#555" }, top.toPrecision(3));
    make("text", { x: 2, y: lower, "font-size": 11, fill: "#555" }, logScale ? bottom.toPrecision(2) : "0");
    if (logScale) make("text", { x: 2, y: (upper + lower) / 2, "font-size": 11, fill: "#555" }, "log");
    const every = Math.max(1, Math.ceil(T / 25));
    for (let t = 1; t <= T; t += every) make("text", { x: x(t) - 4, y: lower + 14, "font-size": 11, fill: "#555" }, t);
    const colours = ["#b45f06", "#3d85c6", "#6aa84f", "#a64d79", "#45818e", "#cc0000", "#7f6000", "#674ea7"];
    const width = Math.max(2, (((right - left) / T) * 0.8) / series.length);
    series.forEach((s, k) => {
      const colour = colours[k % colours.length];
      for (const p of s.points) {
        const reached = mode === "backward" && p.step <= index;
        const px = x(p.t) - (series.length * width) / 2 + k * width;
        const py = y(p.norm);
        const bar = make("rect", {
          x: px, y: reached ? py : lower, width: width, height: reached ? lower - py : 0,
          fill: colour, class: "bar" + (reached ? " reached" : ""), "data-t": p.t, "data-norm": p.norm,
        });
        if (p.step === index && mode === "backward") bar.setAttribute("stroke", "#000");
      }
      const lx = left + 10 + (k % perRow) * 170;
      const ly = 2 + Math.floor(k / perRow) * 13;
      make("rect", { x: lx, y: ly + 1, width: 10, height: 9, fill: colour });
      make("text", { x: lx + 14, y: ly + 10, "font-size": 11, fill: "#333" }, s.label);
    });
  }

  function paint() {
    const list = steps();
    const step = list[index];
    $("step").textContent = index + 1 + " / " + list.length;
    const slider = $("slider");
    slider.max = String(list.length);
    slider.value = String(index + 1);
    $("where").textContent = [step.where, step.op].filter(Boolean).join(" · ");
    $("collapsed-note").hidden = !DATA.collapsed;
    $("help").textContent = HELP[mode];
    $("node").textContent = step.name;
    paintGraph(step);
    if (mode === "backward") paintBackward(step);
    else paintForward(step);
    paintChart();
    keepInView(step);
  }

  function writeHash() {
    const hash = (mode === "forward" ? "#mode=forward&" : "#") + "step=" + (index + 1);
    try {
      history.replaceState(null, "", hash);
    } catch (error) {
      // an inline page (Jupyter's srcdoc iframe) has no address of its own to update
    }
  }

  function go(target) {
    const list = steps();
    index = Math.min(Math.max(target, 0), list.length - 1);
    paint();
    writeHash();
  }

  function showMode(next) {
    if (next === mode) return false;
    mode = next;
    $("mode-backward").classList.toggle("active", mode === "backward");
    $("mode-forward").classList.toggle("active", mode === "forward");
    $("rule-title").textContent = mode === "backward" ? "local rule" : "formula";
    markSteppable();
    stop();
    return true;
  }

  function setMode(next) {
    if (showMode(next)) go(0);
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    $("play").textContent = "play";
  }

  function play() {
    if (timer !== null) return stop();
    if (index >= steps().length - 1) go(0);
    $("play").textContent = "pause";
    timer = setInterval(() => {
      go(index + 1);
      if (index >= steps().length - 1) stop();
    }, 700);
  }

  function readHash() {
    const fields = new URLSearchParams(location.hash.replace(/^#/, ""));
    showMode(fields.get("mode") === "forward" ? "forward" : "backward");
    const n = parseInt(fields.get("step") || "1", 10);
    index = Math.min(Math.max((isNaN(n) ? 1 : n) - 1, 0), steps().length - 1);
    paint();
  }

  function setZoom(value) {
    zoom = Math.min(Math.max(value, 0.01), 4);
    svg.setAttribute("width", natural.width * zoom + "pt");
    svg.setAttribute("height", natural.height * zoom + "pt");
  }

  // The zoom at which the whole graph fits the pane (the SVG's size is in points: 4/3 pixels each), and the
  // least at which its labels stay legible: a click on a node of the overview zooms back to that.
  const wholeGraph = () => Math.min((pane.clientWidth - 20) / ((natural.width * 4) / 3),
                                    (pane.clientHeight - 20) / ((natural.height * 4) / 3));
  const LEGIBLE = 0.6;

  // A click on a node goes to the step of the walk that reaches it (the first, in the mode shown).
  function stepTo(id) {
    const target = touches[mode].first.get(id);
    if (target === undefined) return;
    if (zoom < LEGIBLE) setZoom(LEGIBLE);
    go(target);
  }

  $("first").addEventListener("click", () => go(0));
  $("prev").addEventListener("click", () => go(index - 1));
  $("next").addEventListener("click", () => go(index + 1));
  $("last").addEventListener("click", () => go(steps().length - 1));
  $("play").addEventListener("click", play);
  $("slider").addEventListener("input", (event) => go(parseInt(event.target.value, 10) - 1));
  $("mode-backward").addEventListener("click", () => setMode("backward"));
  $("mode-forward").addEventListener("click", () => setMode("forward"));
  $("zoom-in").addEventListener("click", () => setZoom(zoom * 1.25));
  $("zoom-out").addEventListener("click", () => setZoom(zoom / 1.25));
  $("zoom-fit").addEventListener("click", () => setZoom(wholeGraph()));
  for (const [id, g] of nodes) g.addEventListener("click", () => stepTo(id));
  window.addEventListener("hashchange", readHash);
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return; // the browser's own shortcuts (Alt+← goes back)
    if (event.target instanceof HTMLInputElement && event.key !== " ") return; // the slider moves itself with the arrows
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (event.key in moves) go(index + moves[event.key]);
    else if (event.key === "Home") go(0);
    else if (event.key === "End") go(steps().length - 1);
    else if (event.key === " ") play();
    else return;
    event.preventDefault();
  });

  // Start with the whole graph in view when that keeps the labels legible, else at a legible size.
  setZoom(Math.min(1, Math.max(wholeGraph(), LEGIBLE)));
  markSteppable();
  readHash();
})();
