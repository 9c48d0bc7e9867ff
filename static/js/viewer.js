// The study page's image viewer (templates/patients/_viewer.html): one or two panes, each zoomed and panned by the
// vendored Panzoom (static/vendor/panzoom, 4.6.2), with brightness, contrast and invert as a CSS filter on the photo,
// and the model's heatmap laid over the photo at its displayed size with an opacity and a colour key.
// Next/previous walks the study's cards in page order, read afresh each time, so cards the poll adds or replaces
// are included. Keys follow OHIF's default hotkeys where OHIF has one (see the list in the viewer).
// Styles are set through the CSSOM (element.style), which the Content-Security-Policy allows; no style attributes.
(function () {
  "use strict";
  const viewer = document.getElementById("viewer");
  const grid = document.getElementById("images");
  if (!viewer || !grid || typeof viewer.showModal !== "function" || typeof window.Panzoom !== "function") return;

  const title = document.getElementById("viewer-title");
  const position = document.getElementById("viewer-position");
  const help = document.getElementById("viewer-help");
  const tools = viewer.querySelector(".viewer-tools");
  const scaleOut = viewer.querySelector(".viewer-scale");
  const second = viewer.querySelector("select[name=second]");
  const button = (action) => viewer.querySelector(`button[data-action="${action}"]`);
  const input = (name) => tools.querySelector(`input[name="${name}"]`);
  const PAN_STEP = 40; // screen pixels per Shift+arrow press
  const LOOK = { brightness: 100, contrast: 100, invert: false, heatmap: false, opacity: 60 };
  let compare = false;
  let active = null;
  let opener = null;

  // ---- The study's images, in page order ------------------------------------------------------
  const text = (root, selector) => {
    const node = root.querySelector(selector);
    return node ? node.textContent.replace(/\s+/g, " ").trim() : "";
  };
  // What the card says of the image (its review state, in the card's own words), so the viewer shows an excluded
  // or not-a-plane image as such rather than skipping it.
  function stateOf(card, link) {
    const result = text(card, ".result");
    const first = result.split(/[\s:]/)[0];
    const badges = Array.from(card.querySelectorAll(".badges .badge"), (badge) => badge.textContent.trim())
      .filter((badge) => badge && !(first && badge.startsWith(first))); // "Suggested: …" needs no "Suggested" badge
    const parts = [result, ...badges].filter(Boolean);
    if (link && link.dataset.excluded) parts.unshift("Excluded (" + link.dataset.excluded.toLowerCase() + ")");
    return parts.length ? parts.join(" · ") : text(card, ".status");
  }
  function itemOf(card) {
    const link = card.querySelector("a.enlarge");
    const video = card.querySelector("video.cine-video");
    const still = card.querySelector(".cine img.photo");
    const src = link ? link.href : video ? video.poster : still ? still.src : "";
    if (!src) return null;
    return {
      id: card.dataset.imageId,
      src,
      name: text(card, ".filename") || "Image",
      cine: !link,
      heatmap: (link && link.dataset.heatmap) || "",
      label: (link && link.dataset.heatmapLabel) || "",
      state: stateOf(card, link),
    };
  }
  const items = () => Array.from(grid.querySelectorAll(".image-card[data-image-id]")).map(itemOf).filter(Boolean);

  // ---- Panes ----------------------------------------------------------------------------------
  function makePane(section) {
    const stage = section.querySelector(".viewer-stage");
    const stack = section.querySelector(".viewer-stack");
    const pane = {
      section, stage, stack,
      photo: section.querySelector(".viewer-photo"),
      heat: section.querySelector(".viewer-heatmap"),
      key: section.querySelector(".heatmap-key"),
      item: null,
      look: { ...LOOK },
      zoom: window.Panzoom(stack, { canvas: true, maxScale: 12, minScale: 0.25, step: 0.25, cursor: "grab" }),
    };
    stage.addEventListener("wheel", (event) => { activate(pane); pane.zoom.zoomWithWheel(event); });
    stage.addEventListener("pointerdown", () => activate(pane));
    stage.addEventListener("focus", () => activate(pane));
    stack.addEventListener("panzoomchange", () => { if (pane === active) showScale(); });
    pane.photo.addEventListener("load", () => fit(pane));
    return pane;
  }
  const panes = Array.from(viewer.querySelectorAll(".viewer-pane")).map(makePane);
  const shown = () => (compare ? panes : panes.slice(0, 1));

  // The photo's box is the largest that fits the stage at the image's aspect ratio; the heatmap fills the same
  // box, so it is read at the size the image is shown, and zooms with it.
  function fit(pane, keepZoom) {
    const { naturalWidth: width, naturalHeight: height } = pane.photo;
    const box = pane.stage.getBoundingClientRect();
    if (!width || !height || !box.width || !box.height) return;
    const ratio = Math.min(box.width / width, box.height / height);
    pane.stack.style.width = Math.floor(width * ratio) + "px";
    pane.stack.style.height = Math.floor(height * ratio) + "px";
    if (!keepZoom) pane.zoom.reset({ animate: false });
  }
  function showScale() {
    if (active) scaleOut.textContent = Math.round(active.zoom.getScale() * 100) + "%";
  }
  function paint(pane) {
    const look = pane.look;
    pane.photo.style.filter =
      `brightness(${look.brightness}%) contrast(${look.contrast}%)` + (look.invert ? " invert(1)" : "");
    const withHeat = Boolean(pane.item && pane.item.heatmap && look.heatmap);
    if (withHeat && pane.heatFor !== pane.item.heatmap) loadHeat(pane);
    // Shown once its PNG is there: it is made on the first request (static/js/heatmap.js).
    pane.heat.hidden = !withHeat || !pane.heat.getAttribute("src");
    pane.key.hidden = pane.heat.hidden;
    pane.heat.style.opacity = String(look.opacity / 100);
  }
  function loadHeat(pane) {
    const item = pane.item;
    pane.heatFor = item.heatmap;
    window.heatmapReady(item.heatmap)
      .then((src) => { if (pane.item === item) { pane.heat.src = src; paint(pane); } })
      .catch(() => { if (pane.item === item) pane.heatFor = null; });
  }
  function show(pane, item) {
    pane.item = item;
    const { photo, heat, key, section } = pane;
    photo.src = item.src;
    photo.alt = (item.cine ? "First frame of cine loop " : "Ultrasound image ") + item.name;
    heat.removeAttribute("src");
    heat.alt = item.heatmap ? "Model heatmap for " + item.name : "";
    pane.heatFor = null;
    key.querySelector("figcaption").textContent = "Heatmap: where the model looked for " + (item.label || "its answer");
    section.querySelector(".viewer-name").textContent = item.name;
    section.querySelector(".viewer-state").textContent =
      (item.state || "") + (item.cine ? " · cine loop: its first frame here; play it on its card" : "");
    if (photo.complete && photo.naturalWidth) fit(pane);
    paint(pane);
    if (pane === active) syncHead();
  }
  function syncHead() {
    const list = items();
    const index = list.findIndex((item) => active.item && item.id === active.item.id);
    title.textContent = active.item ? active.item.name : "Image";
    position.textContent = index >= 0 ? `Image ${index + 1} of ${list.length}` : "";
    button("previous").disabled = index <= 0;
    button("next").disabled = index < 0 || index >= list.length - 1;
    input("brightness").value = active.look.brightness;
    input("contrast").value = active.look.contrast;
    input("invert").checked = active.look.invert;
    input("heatmap").checked = active.look.heatmap;
    input("heatmap").disabled = !(active.item && active.item.heatmap);
    input("opacity").value = active.look.opacity;
    if (compare) second.value = panes[1].item ? panes[1].item.id : "";
    showScale();
  }
  function activate(pane) {
    if (active === pane) return;
    active = pane;
    panes.forEach((p) => p.section.classList.toggle("active", p === pane && compare));
    syncHead();
  }

  // ---- Actions --------------------------------------------------------------------------------
  function step(offset, absolute) {
    const list = items();
    if (!list.length) return;
    const here = list.findIndex((item) => active.item && item.id === active.item.id);
    const index = absolute === undefined ? here + offset : absolute;
    if (index < 0 || index >= list.length || index === here) return;
    show(active, list[index]);
  }
  function setCompare(on) {
    compare = on;
    panes[1].section.hidden = !on;
    viewer.classList.toggle("comparing", on);
    button("compare").setAttribute("aria-pressed", String(on));
    if (on) {
      const list = items();
      second.replaceChildren(...list.map((item, index) => new Option(`${index + 1}. ${item.name}`, item.id)));
      const here = list.findIndex((item) => panes[0].item && item.id === panes[0].item.id);
      show(panes[1], list[(here + 1) % list.length] || list[0]);
    }
    shown().forEach((pane) => { if (pane.photo.naturalWidth) fit(pane, true); }); // the pane's new width; zoom kept
    if (!on) active = panes[0];
    panes.forEach((pane) => pane.section.classList.toggle("active", on && pane === active));
    syncHead();
  }
  function toggleHelp(open) {
    const show = open === undefined ? help.hidden : open;
    help.hidden = !show;
    button("help").setAttribute("aria-expanded", String(show));
    if (show) help.scrollIntoView({ block: "nearest" });
  }
  function resetLook(pane) {
    pane.look = { ...LOOK, heatmap: pane.look.heatmap, opacity: pane.look.opacity };
    paint(pane);
    pane.zoom.reset({ animate: false });
    syncHead();
  }
  function setLook(name, value) {
    active.look[name] = value;
    paint(active);
  }
  const actions = {
    previous: () => step(-1),
    next: () => step(1),
    compare: () => setCompare(!compare),
    help: () => toggleHelp(),
    close: () => viewer.close(),
    "zoom-in": () => active.zoom.zoomIn({ animate: false }),
    "zoom-out": () => active.zoom.zoomOut({ animate: false }),
    fit: () => active.zoom.reset({ animate: false }),
    reset: () => resetLook(active),
  };
  viewer.addEventListener("click", (event) => {
    if (event.target === viewer) { viewer.close(); return; } // a click on the backdrop
    const control = event.target.closest("button[data-action]");
    if (control && actions[control.dataset.action]) actions[control.dataset.action]();
  });
  tools.addEventListener("input", (event) => {
    const field = event.target;
    if (field.type === "checkbox") setLook(field.name, field.checked);
    else if (field.type === "range") setLook(field.name, Number(field.value));
  });
  second.addEventListener("change", () => {
    const item = items().find((candidate) => candidate.id === second.value);
    if (item) show(panes[1], item);
  });

  // ---- Keyboard -------------------------------------------------------------------------------
  // Keys a focused control uses itself (a slider's arrows, a button's Space) stay with the control.
  const OWN_KEYS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", " "]);
  const PAN = { ArrowUp: [0, 1], ArrowDown: [0, -1], ArrowLeft: [1, 0], ArrowRight: [-1, 0] };
  function onKey(event) {
    const key = event.key;
    if (key === "Escape" && !help.hidden) { event.preventDefault(); toggleHelp(false); return; }
    if (key === "Tab") { trapFocus(event); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (OWN_KEYS.has(key) && event.target.matches("input, select, button")) return;
    if (event.shiftKey && PAN[key]) {
      const scale = active.zoom.getScale();
      active.zoom.pan((PAN[key][0] * PAN_STEP) / scale, (PAN[key][1] * PAN_STEP) / scale, { relative: true, animate: false });
    } else if (key === "+") actions["zoom-in"]();
    else if (key === "-") actions["zoom-out"]();
    else if (key === "=") actions.fit();
    else if (key === " ") actions.reset();
    else if (key === "ArrowDown") step(1);
    else if (key === "ArrowUp") step(-1);
    else if (key === "Home") step(0, 0);
    else if (key === "End") step(0, items().length - 1);
    else if (key === "ArrowRight" || key === "ArrowLeft") {
      if (!compare) return;
      const next = panes[active === panes[0] ? 1 : 0];
      activate(next);
      next.stage.focus({ preventScroll: true });
    }
    else if (key === "i" || key === "I") { setLook("invert", !active.look.invert); syncHead(); }
    else if (key === "m" || key === "M") { if (active.item && active.item.heatmap) { setLook("heatmap", !active.look.heatmap); syncHead(); } }
    else if (key === "s" || key === "S") actions.compare();
    else if (key === "?") actions.help();
    else return;
    event.preventDefault();
  }
  viewer.addEventListener("keydown", onKey);

  // A modal dialog already makes the page behind it inert; Tab also wraps inside it instead of leaving for the
  // browser's own controls.
  function trapFocus(event) {
    const focusable = Array.from(
      viewer.querySelectorAll("button, input, select, [tabindex='0']")
    ).filter((node) => !node.disabled && node.getClientRects().length > 0);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  }

  // ---- Opening and closing --------------------------------------------------------------------
  function open(card) {
    const item = items().find((candidate) => candidate.id === card.dataset.imageId);
    if (!item) return false;
    opener = card.dataset.imageId;
    const toggle = card.querySelector(".heatmap-toggle");
    panes.forEach((pane) => { pane.look = { ...LOOK, heatmap: Boolean(toggle && toggle.checked) }; });
    active = panes[0];
    setCompare(false);
    toggleHelp(false);
    viewer.showModal();
    show(panes[0], item);
    panes[0].stage.focus({ preventScroll: true });
    return true;
  }
  grid.addEventListener("click", (event) => {
    const link = event.target.closest("a.enlarge");
    if (!link) return;
    if (open(link.closest(".image-card"))) event.preventDefault();
  });
  // Focus goes back to the card of the image last looked at (a card the poll replaced is found again by id).
  viewer.addEventListener("close", () => {
    const id = (panes[0].item && panes[0].item.id) || opener;
    const card = document.getElementById("image-" + id);
    if (!card) return;
    const target = card.querySelector("a.enlarge") || card.querySelector("video.cine-video") || card;
    if (target === card) card.setAttribute("tabindex", "-1");
    target.focus();
  });
  window.addEventListener("resize", () => { if (viewer.open) shown().forEach((pane) => fit(pane, true)); });
})();
