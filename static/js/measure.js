// The head measurement's editor on the study page's cards (templates/patients/_measurement_editor.html): adjust the
// ellipse by dragging its four axis ends (or moving them with the arrow keys), redraw it with three clicks (two ends
// of one axis, then a point on the curve), or calibrate the image by drawing a line of known length. The SVG's
// viewBox is the image in its own pixels (pixel centres at whole numbers, so it starts at -0.5), so everything here
// is in image pixels, as the server stores it. The forms are ordinary page actions: study.js posts them (data-ajax)
// and swaps in the card that comes back. Listeners sit on the document, so cards the poll replaces need nothing.
// The geometry follows biometry/ml/ellipse.py (ellipse_from_axis_ends, ellipse_from_three_points, Ramanujan's
// perimeter); the server recomputes every figure from the points posted.
(function () {
  "use strict";
  if (!document.getElementById("images")) return;
  document.documentElement.classList.add("js");

  const KEY_STEP = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  const HINTS = {
    adjust: "Drag the four ends of the axes, or focus one and move it with the arrow keys (Shift: 10 pixels).",
    redraw: "Click the two ends of one axis, then a point on the skull's outline.",
    calibrate: "Click the two ends of a distance you know (a caliper scale, say), then give its length in mm.",
  };

  // ---- Geometry: as biometry/ml/ellipse.py ------------------------------------------------------
  function ordered(cx, cy, first, second, angle) {
    if (!(second > 0)) throw new Error("the ellipse has no width");
    if (second > first) { [first, second] = [second, first]; angle += Math.PI / 2; }
    angle = ((angle % Math.PI) + Math.PI) % Math.PI;
    return { cx, cy, a: first, b: second, angle };
  }
  function fromAxisEnds(ends) {
    const [[x1, y1], [x2, y2]] = ends;
    const a = Math.hypot(x2 - x1, y2 - y1) / 2;
    if (!(a > 0)) throw new Error("the two ends of the long axis coincide");
    const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, angle = Math.atan2(y2 - y1, x2 - x1);
    const nx = -Math.sin(angle), ny = Math.cos(angle);
    const b = ends.slice(2).reduce((sum, [x, y]) => sum + Math.abs((x - cx) * nx + (y - cy) * ny), 0) / 2;
    return ordered(cx, cy, a, b, angle);
  }
  function fromThreePoints([x1, y1], [x2, y2], [px, py]) {
    const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, half = Math.hypot(x2 - x1, y2 - y1) / 2;
    if (!(half > 0)) throw new Error("the two axis ends coincide");
    const angle = Math.atan2(y2 - y1, x2 - x1), dx = px - cx, dy = py - cy;
    const u = dx * Math.cos(angle) + dy * Math.sin(angle), v = -dx * Math.sin(angle) + dy * Math.cos(angle);
    if (Math.abs(u) >= half || v === 0) throw new Error("the third point must lie beside the axis, within its ends");
    return ordered(cx, cy, half, Math.abs(v) / Math.sqrt(1 - (u / half) ** 2), angle);
  }
  function perimeter({ a, b }) {
    const h = ((a - b) / (a + b)) ** 2;
    return Math.PI * (a + b) * (1 + (3 * h) / (10 + Math.sqrt(4 - 3 * h)));
  }

  // ---- Drawing ----------------------------------------------------------------------------------
  const SVG_NS = "http://www.w3.org/2000/svg";
  const fixed = (value) => value.toFixed(2);
  const setAttrs = (node, attrs) => { if (node) Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v)); };

  function drawEllipse(svg, e) {
    let node = svg.querySelector(".current-ellipse");
    if (!node) {
      node = document.createElementNS(SVG_NS, "ellipse");
      setAttrs(node, { class: "current-ellipse", "vector-effect": "non-scaling-stroke" });
      svg.insertBefore(node, svg.querySelector(".clicks"));
    }
    const deg = (e.angle * 180) / Math.PI;
    setAttrs(node, { cx: fixed(e.cx), cy: fixed(e.cy), rx: fixed(e.a), ry: fixed(e.b), transform: `rotate(${fixed(deg)} ${fixed(e.cx)} ${fixed(e.cy)})` });
  }
  function drawAxes(svg, ends) {
    setAttrs(svg.querySelector(".axis-ofd"), { x1: fixed(ends[0][0]), y1: fixed(ends[0][1]), x2: fixed(ends[1][0]), y2: fixed(ends[1][1]) });
    setAttrs(svg.querySelector(".axis-bpd"), { x1: fixed(ends[2][0]), y1: fixed(ends[2][1]), x2: fixed(ends[3][0]), y2: fixed(ends[3][1]) });
  }
  function mark(editor, point) {
    const group = editor.querySelector(".clicks");
    const dot = document.createElementNS(SVG_NS, "circle");
    setAttrs(dot, { class: "click", cx: fixed(point[0]), cy: fixed(point[1]), r: group.dataset.r });
    group.appendChild(dot);
  }
  function line(editor, from, to) {
    const node = document.createElementNS(SVG_NS, "line");
    setAttrs(node, { class: "click-line", x1: fixed(from[0]), y1: fixed(from[1]), x2: fixed(to[0]), y2: fixed(to[1]), "vector-effect": "non-scaling-stroke" });
    editor.querySelector(".clicks").appendChild(node);
  }

  // What the figures would be (not saved until the form is posted), in mm when the image has a pixel size.
  function describe(editor, e) {
    const size = Number(editor.dataset.pixelSize) || 0;
    const figure = (px) => (size ? (px * size).toFixed(1) + " mm" : px.toFixed(1) + " px");
    const text = `HC ${figure(perimeter(e))} · BPD ${figure(2 * e.b)} · OFD ${figure(2 * e.a)}` +
      (size ? "" : " (not calibrated)") + ": not saved yet";
    editor.querySelector(".measure-live").textContent = text;
  }
  const say = (editor, text) => { editor.querySelector(".measure-hint").textContent = text; };
  const pointsValue = (points) => points.map(([x, y]) => fixed(x) + "," + fixed(y)).join(" ");

  // ---- State per editor: its mode, the handles' positions, the clicks so far ----------------------
  const states = new WeakMap();
  function stateOf(editor) {
    let state = states.get(editor);
    if (!state) {
      const handles = Array.from(editor.querySelectorAll(".handle"));
      state = { mode: null, clicks: [], ends: handles.map((h) => [Number(h.getAttribute("cx")), Number(h.getAttribute("cy"))]) };
      states.set(editor, state);
    }
    return state;
  }

  function imagePoint(editor, event) {
    const svg = editor.querySelector(".measure-svg");
    const box = svg.getBoundingClientRect();
    const width = Number(editor.dataset.width), height = Number(editor.dataset.height);
    const x = ((event.clientX - box.left) / box.width) * width - 0.5;
    const y = ((event.clientY - box.top) / box.height) * height - 0.5;
    return [Math.min(Math.max(x, -0.5), width - 0.5), Math.min(Math.max(y, -0.5), height - 0.5)];
  }

  function setMode(editor, mode) {
    const state = stateOf(editor);
    state.mode = mode;
    state.clicks = [];
    editor.querySelector(".clicks").replaceChildren();
    editor.querySelectorAll("[data-mode]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === mode)));
    const handles = editor.querySelector(".handles");
    if (handles) handles.toggleAttribute("hidden", mode !== "adjust");  // an SVG element: no .hidden property
    [["adjust", ".measure-adjust"], ["redraw", ".measure-redraw"], ["calibrate", ".measure-calibrate"]].forEach(([name, selector]) => {
      const form = editor.querySelector(selector);
      if (form) form.hidden = name !== mode;
    });
    editor.querySelector(".measure-svg").classList.toggle("clicking", mode === "redraw" || mode === "calibrate");
    editor.querySelector(".measure-live").textContent = "";
    say(editor, HINTS[mode]);
    editor.querySelector(".measure-stage").scrollIntoView({ block: "nearest" });
    if (mode === "adjust") editor.querySelector(".handle").focus({ preventScroll: true });
  }

  // Adjust: a handle moved (by the pointer or a key): the axes, the ellipse, the figures and the form follow.
  function moveHandle(editor, index, point) {
    const state = stateOf(editor);
    state.ends[index] = point;
    const handle = editor.querySelectorAll(".handle")[index];
    setAttrs(handle, { cx: fixed(point[0]), cy: fixed(point[1]) });
    const svg = editor.querySelector(".measure-svg");
    drawAxes(svg, state.ends);
    editor.querySelector(".measure-adjust input[name=points]").value = pointsValue(state.ends);
    try {
      const e = fromAxisEnds(state.ends);
      drawEllipse(svg, e);
      describe(editor, e);
    } catch (error) {
      say(editor, "These ends make no ellipse: " + error.message + ".");
    }
  }

  function click(editor, point) {
    const state = stateOf(editor);
    const limit = state.mode === "redraw" ? 3 : 2;
    if (state.clicks.length >= limit) { state.clicks = []; editor.querySelector(".clicks").replaceChildren(); }
    state.clicks.push(point);
    mark(editor, point);
    if (state.clicks.length === 2) line(editor, state.clicks[0], state.clicks[1]);
    if (state.mode === "redraw") redrawClicked(editor, state.clicks);
    else calibrateClicked(editor, state.clicks);
  }

  function redrawClicked(editor, clicks) {
    const form = editor.querySelector(".measure-redraw");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    if (clicks.length < 3) {
      say(editor, clicks.length === 1 ? "Now the other end of that axis." : "Now a point on the skull's outline.");
      return;
    }
    try {
      const e = fromThreePoints(...clicks);
      drawEllipse(editor.querySelector(".measure-svg"), e);
      describe(editor, e);
      form.querySelector("input[name=points]").value = pointsValue(clicks);
      button.disabled = false;
      say(editor, "Save the redrawn ellipse, or click again to start over.");
    } catch (error) {
      say(editor, "These clicks make no ellipse: " + error.message + ". Click again to start over.");
    }
  }

  function calibrateClicked(editor, clicks) {
    const form = editor.querySelector(".measure-calibrate");
    const button = form.querySelector("button[type=submit]");
    button.disabled = clicks.length < 2;
    if (clicks.length < 2) { say(editor, "Now the other end of the distance."); return; }
    const [[x1, y1], [x2, y2]] = clicks;
    Object.entries({ start_x: x1, start_y: y1, end_x: x2, end_y: y2 }).forEach(([name, value]) => {
      form.querySelector(`input[name=${name}]`).value = fixed(value);
    });
    say(editor, `A line of ${Math.hypot(x2 - x1, y2 - y1).toFixed(1)} pixels: give its length in mm and save.`);
    form.querySelector("input[name=distance_mm]").focus({ preventScroll: true });
  }

  // ---- Events (delegated: cards come and go) ----------------------------------------------------
  const editorOf = (node) => node.closest && node.closest("details.measure-edit");
  let dragging = null;

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-mode]");
    if (button && editorOf(button)) { setMode(editorOf(button), button.dataset.mode); return; }
  });
  document.addEventListener("pointerdown", (event) => {
    const editor = editorOf(event.target);
    if (!editor || !event.target.closest(".measure-svg") || event.button !== 0) return;
    const state = stateOf(editor);
    const handle = event.target.closest(".handle");
    if (state.mode === "adjust" && handle) {
      event.preventDefault();
      handle.setPointerCapture(event.pointerId);
      handle.focus({ preventScroll: true });
      dragging = { editor, handle, index: Number(handle.dataset.index) };
    } else if (state.mode === "redraw" || state.mode === "calibrate") {
      event.preventDefault();
      click(editor, imagePoint(editor, event));
    }
  });
  document.addEventListener("pointermove", (event) => {
    if (dragging) moveHandle(dragging.editor, dragging.index, imagePoint(dragging.editor, event));
  });
  ["pointerup", "pointercancel"].forEach((type) => document.addEventListener(type, () => { dragging = null; }));
  document.addEventListener("keydown", (event) => {
    const handle = event.target.closest && event.target.closest(".handle");
    if (!handle || !KEY_STEP[event.key] || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    const editor = editorOf(handle);
    const index = Number(handle.dataset.index);
    const [dx, dy] = KEY_STEP[event.key].map((step) => step * (event.shiftKey ? 10 : 1));
    const [x, y] = stateOf(editor).ends[index];
    const width = Number(editor.dataset.width), height = Number(editor.dataset.height);
    moveHandle(editor, index, [Math.min(Math.max(x + dx, -0.5), width - 0.5), Math.min(Math.max(y + dy, -0.5), height - 0.5)]);
  });

  // ---- The measurement's history: loaded when its disclosure opens ------------------------------
  document.addEventListener("toggle", async (event) => {
    const details = event.target;
    if (!details.matches || !details.matches("details.measure-history") || !details.open) return;
    const target = details.querySelector(".history-body");
    try {
      const response = await fetch(details.dataset.url, { credentials: "same-origin" });
      if (response.ok) target.innerHTML = await response.text();
    } catch (error) {
      target.textContent = "The history could not be loaded.";
    }
  }, true);
})();
