// The study page: drag-and-drop uploads with per-file progress, live cards, reviews, history and an image viewer.
// Cards are rendered by the server (patients/_image_card.html); this script only swaps them in.
// Every request it makes carries "X-Requested-With: fetch" and gets HTML back: a card, the poll's fragment
// (patients/_study_images.html), or a refusal (patients/_error.html: data-code and the message). Never JSON.
(function () {
  "use strict";
  const grid = document.getElementById("images");
  if (!grid) return;
  document.documentElement.classList.add("js");

  const form = document.getElementById("upload-form");
  const pollUrl = grid.dataset.pollUrl;
  const live = document.getElementById("live-status");
  const summary = document.getElementById("plane-summary");
  const noImages = document.getElementById("no-images");
  const csrfToken = () => (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  const MAX_PARALLEL = 3;
  let uploading = 0;
  let pollTimer = null;
  let quietPolls = 0;
  // The state the page last saw (the poll's X-Poll-State, and its ETag): the server answers 304, or only the cards
  // changed since. A long study's state would make too long a URL (gunicorn takes 4 KB): every card comes instead.
  let pollState = grid.dataset.pollToken || "";
  let pollEtag = grid.dataset.pollEtag || "";
  const SINCE_MAX_LENGTH = 2000;

  const announce = (text) => { if (live) live.textContent = text; };
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text) node.textContent = text;
    return node;
  };
  const PARTIAL = { "X-Requested-With": "fetch" };
  const parse = (html) => {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  };
  const fromHtml = (html) => parse(html).firstElementChild;
  // The message of a refusal (patients/_error.html), or null when the answer is not one (a proxy's page).
  const errorText = (html) => {
    const error = parse(html || "").querySelector("[data-code]");
    return error ? error.textContent.trim() : null;
  };
  // A script request that was redirected landed on the login page: the session ended, so reload.
  const sessionEnded = () => { window.location.reload(); };
  const showGrid = () => { if (noImages) noImages.hidden = grid.children.length > 0; };

  // ---- Cards ----------------------------------------------------------------------------------
  function replaceCard(old, html) {
    const card = fromHtml(html);
    if (old) {
      // Keep what the person had open: the heatmap toggle, the history panel, a comment being typed.
      const toggle = old.querySelector(".heatmap-toggle");
      const history = old.querySelector("details.history");
      if (toggle && toggle.checked) { const t = card.querySelector(".heatmap-toggle"); if (t) { t.checked = true; loadHeatmap(card); } }
      if (history && history.open) { const h = card.querySelector("details.history"); if (h) { h.open = true; loadHistory(h); } }
      keepVideo(old, card);
      const note = old.querySelector(".duplicate-note");
      if (note) card.querySelector(".body").prepend(note);
      const hadFocus = old.contains(document.activeElement);
      old.replaceWith(card);
      if (hadFocus) {
        card.setAttribute("tabindex", "-1");
        card.focus({ preventScroll: true });
      }
    } else {
      grid.appendChild(card);
    }
    layoutCine(card);
    showGrid();
    return card;
  }

  function pending() {
    return uploading > 0 || grid.querySelector('[data-status="QUEUED"], [data-status="RUNNING"]') !== null;
  }

  function applyFragment(html) {
    const fragment = parse(html);
    fragment.querySelectorAll(".image-card").forEach((fresh) => {
      const card = document.getElementById(fresh.id);
      if (card && card.dataset.version === fresh.dataset.version) return;
      quietPolls = 0;
      const before = card && card.dataset.status;
      const replaced = replaceCard(card, fresh.outerHTML);
      const label = replaced.querySelector(".result .label");
      if (before !== replaced.dataset.status && label) {
        announce(replaced.querySelector(".filename").textContent.trim() + ": " + label.textContent.trim());
      }
    });
    const fresh = fragment.querySelector('[data-part="summary"]');
    if (summary && fresh && fresh.innerHTML !== summary.dataset.html) {
      summary.innerHTML = fresh.innerHTML;
      summary.dataset.html = fresh.innerHTML;
    }
  }

  async function poll() {
    pollTimer = null;
    try {
      // X-Background-Poll tells the server this is no activity of the person's, so an idle session still ends.
      const headers = { ...PARTIAL, "X-Background-Poll": "1" };
      if (pollEtag) headers["If-None-Match"] = pollEtag;
      const since = pollState && pollState.length <= SINCE_MAX_LENGTH;
      const url = since ? pollUrl + "?since=" + encodeURIComponent(pollState) : pollUrl;
      const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
      if (response.redirected || response.status === 401 || response.status === 403) {
        sessionEnded();
        return;
      }
      if (response.status === 304) {
        quietPolls += 1;  // nothing changed
      } else if (response.ok) {
        quietPolls += 1;
        applyFragment(await response.text());
        pollEtag = response.headers.get("ETag") || "";
        pollState = response.headers.get("X-Poll-State") || "";
      }
    } catch (error) {
      // The network blinked: try again on the next tick.
    }
    schedulePoll();
  }

  // Every second while things change; slower, up to every 5 s, while a queue stands still.
  function schedulePoll() {
    if (pollTimer || !pending()) return;
    pollTimer = setTimeout(poll, Math.min(1000 + 250 * quietPolls, 5000));
  }
  function pollNow() {
    quietPolls = 0;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
    poll();
  }

  // ---- Cine loops: the player and its timeline strip (patients/_cine.html) ----------------------
  // The strip's frames run left to right over its width; frame f plays from f / fps to (f + 1) / fps, so a seek
  // goes to the middle of the frame, (f + 0.5) / fps, and the frame shown is floor(currentTime * fps).
  const timelineOf = (node) => node && node.closest(".cine") && node.closest(".cine").querySelector(".cine-timeline");
  const videoOf = (timeline) => document.getElementById(timeline.dataset.video);
  const frameCount = (timeline) => Number(timeline.dataset.frames) || 0;
  function fpsOf(timeline) {
    const fps = Number(timeline.dataset.fps);
    if (fps > 0) return fps;
    const video = videoOf(timeline);  // no rate in the file: the video's own length says it
    return video && video.duration > 0 ? frameCount(timeline) / video.duration : 0;
  }
  function currentFrame(timeline) {
    const video = videoOf(timeline);
    const fps = fpsOf(timeline);
    if (!video || !fps) return 0;
    return Math.max(0, Math.min(frameCount(timeline) - 1, Math.floor(video.currentTime * fps + 1e-6)));
  }
  const percentOf = (timeline, frame) => (100 * frame) / Math.max(frameCount(timeline), 1);

  function showFrame(timeline) {
    const frame = currentFrame(timeline);
    const strip = timeline.querySelector(".cine-strip");
    const now = timeline.querySelector(".cine-now");
    // CSSOM, not a style attribute: the Content-Security-Policy allows this and no inline styles.
    if (now) now.style.left = percentOf(timeline, frame + 0.5) + "%";
    if (!strip || strip.getAttribute("aria-valuenow") === String(frame) && strip.dataset.shown) return;
    strip.dataset.shown = "1";
    const segment = Array.from(timeline.querySelectorAll(".seg"))
      .find((s) => Number(s.dataset.start) <= frame && frame < Number(s.dataset.end));
    strip.setAttribute("aria-valuenow", String(frame));
    strip.setAttribute("aria-valuetext", "Frame " + frame + " of " + frameCount(timeline) +
      (segment ? ", " + segment.dataset.name : ""));
    timeline.querySelectorAll(".cine-marker").forEach((marker) => {
      marker.classList.toggle("current", Number(marker.dataset.frame) === frame);
    });
  }

  function seekFrame(timeline, frame) {
    const video = videoOf(timeline);
    const fps = fpsOf(timeline);
    if (!video || !fps) return;
    const last = frameCount(timeline) - 1;
    video.pause();
    video.currentTime = (Math.max(0, Math.min(last, frame)) + 0.5) / fps;
    showFrame(timeline);
  }

  function layoutCine(root) {
    root.querySelectorAll(".cine-timeline").forEach((timeline) => {
      timeline.querySelectorAll(".cine-marker").forEach((marker) => { marker.style.left = marker.dataset.pct + "%"; });
      showFrame(timeline);
    });
  }

  // A card replaced by a poll keeps its video element (and so its place in the clip and whether it plays).
  function keepVideo(old, card) {
    const playing = old.querySelector("video.cine-video");
    const fresh = card.querySelector("video.cine-video");
    if (playing && fresh && playing.id === fresh.id) fresh.replaceWith(playing);
  }

  grid.addEventListener("click", (event) => {
    const marker = event.target.closest(".cine-marker");
    const strip = event.target.closest(".cine-strip");
    if (marker) {
      seekFrame(timelineOf(marker), Number(marker.dataset.frame));
    } else if (strip) {
      const timeline = timelineOf(strip);
      const box = strip.getBoundingClientRect();
      seekFrame(timeline, Math.floor(((event.clientX - box.left) / box.width) * frameCount(timeline)));
    }
  });
  grid.addEventListener("keydown", (event) => {
    const strip = event.target.closest(".cine-strip");
    if (!strip) return;
    const timeline = timelineOf(strip);
    const frame = currentFrame(timeline);
    const steps = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -10, PageUp: 10 };
    let target = null;
    if (event.key in steps) target = frame + steps[event.key];
    else if (event.key === "Home") target = 0;
    else if (event.key === "End") target = frameCount(timeline) - 1;
    if (target === null) return;
    event.preventDefault();
    seekFrame(timeline, target);
  });
  // Media events do not bubble: listen in the capture phase, for cards added later too.
  ["timeupdate", "seeked", "loadedmetadata"].forEach((type) => grid.addEventListener(type, (event) => {
    const timeline = timelineOf(event.target);
    if (timeline) showFrame(timeline);
  }, true));
  // While playing, follow every frame, not only the few timeupdate events a second.
  grid.addEventListener("play", (event) => {
    const video = event.target;
    const timeline = timelineOf(video);
    if (!timeline) return;
    const follow = () => {
      showFrame(timeline);
      if (!video.paused && !video.ended && video.isConnected) requestAnimationFrame(follow);
    };
    requestAnimationFrame(follow);
  }, true);
  // A key frame's card links back to its clip: going there shows that frame.
  grid.addEventListener("click", (event) => {
    const link = event.target.closest("a.seek-clip");
    if (!link) return;
    const clip = document.getElementById("image-" + link.dataset.clip);
    const timeline = clip && clip.querySelector(".cine-timeline");
    if (timeline) seekFrame(timeline, Number(link.dataset.frame));
  });

  // ---- Uploads --------------------------------------------------------------------------------
  const queue = [];

  function placeholderCard(file) {
    const card = el("article", { class: "card image-card uploading", "data-status": "UPLOADING" });
    const body = el("div", { class: "body" });
    const name = el("h3", { class: "filename" }, file.name);
    const label = el("p", { class: "status" }, "Uploading…");
    const bar = el("progress", { class: "upload-progress", max: "100", value: "0", "aria-label": "Upload of " + file.name });
    body.append(name, label, bar);
    card.append(body);
    grid.appendChild(card);
    showGrid();
    return { card, label, bar };
  }

  function rejectCard(parts, file, reason) {
    const card = parts.card;
    card.className = "card image-card rejected";
    card.dataset.status = "REJECTED";
    card.setAttribute("role", "alert");
    parts.bar.remove();
    parts.label.className = "status status-failed";
    parts.label.textContent = "Not uploaded";
    const why = el("p", { class: "error-text reject-reason" }, reason);
    const dismiss = el("button", { type: "button", class: "dismiss" }, "Dismiss");
    dismiss.addEventListener("click", () => { card.remove(); showGrid(); });
    parts.label.after(why);
    why.after(dismiss);
  }

  function upload(file) {
    const parts = placeholderCard(file);
    const maxBytes = Number(form.dataset.maxBytes || 0);
    if (maxBytes && file.size > maxBytes) {
      rejectCard(parts, file, "The file is larger than the " + form.dataset.maxMb + " MB limit.");
      return;
    }
    queue.push({ file, parts });
    pump();
  }

  function pump() {
    while (uploading < MAX_PARALLEL && queue.length) send(queue.shift());
  }

  function uploaded(parts, file, status, html) {
    const card = fromHtml(html);
    const existing = document.getElementById(card.id);
    let shown = existing;
    if (existing && existing !== parts.card) {
      parts.card.remove();  // the page shows this image's card already (these bytes, or a poll was quicker)
      showGrid();
    } else {
      parts.bar.value = 100;
      shown = replaceCard(parts.card, html);
    }
    if (status === 200) markDuplicate(shown, file.name);
    announce(file.name + (status === 200 ? " was already in this study." : " uploaded; queued for classification."));
  }

  // A file already in the study (200: the same bytes) is not stored again. Its card says so where the person
  // looks, not only to screen readers, and comes into view; replaceCard keeps the note through later polls.
  function markDuplicate(card, name) {
    let note = card.querySelector(".duplicate-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "duplicate-note notice warn";
      card.querySelector(".body").prepend(note);
    }
    note.textContent = name + " was already in this study: this is its image, not stored again.";
    card.scrollIntoView({ block: "nearest" });
  }

  function send({ file, parts }) {
    uploading += 1;
    const data = new FormData();
    data.append("file", file, file.name);
    data.append("csrfmiddlewaretoken", csrfToken());
    const pixelSize = form.elements.namedItem("pixel_size_mm");
    if (pixelSize && pixelSize.value) data.append("pixel_size_mm", pixelSize.value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", PARTIAL["X-Requested-With"]);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) parts.bar.value = Math.round((100 * event.loaded) / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.responseURL && xhr.responseURL !== form.action) {
        sessionEnded();
        return;
      }
      if (xhr.status === 200 || xhr.status === 202) {
        uploaded(parts, file, xhr.status, xhr.responseText);
      } else {
        const reason = errorText(xhr.responseText) ||
          (xhr.status === 413 ? "The file is too large." : "The upload failed (HTTP " + xhr.status + ").");
        rejectCard(parts, file, reason);
        announce(file.name + " was not uploaded: " + reason);
      }
      done();
    });
    xhr.addEventListener("error", () => { rejectCard(parts, file, "The upload failed: the server could not be reached."); done(); });
    xhr.send(data);
  }

  function done() {
    uploading -= 1;
    pump();
    pollNow();
  }

  function uploadAll(files) {
    Array.from(files).forEach(upload);
  }

  if (form) {
    const zone = document.getElementById("dropzone");
    const input = form.querySelector("input[type=file]");
    zone.hidden = false;
    input.multiple = true;
    input.removeAttribute("required");
    // The zone is the control now: keep the plain input and its button out of the tab order.
    input.tabIndex = -1;
    form.querySelectorAll(".fallback button").forEach((button) => { button.hidden = true; });
    const choose = () => input.click();
    zone.addEventListener("click", choose);
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); choose(); }
    });
    input.addEventListener("change", () => { uploadAll(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) uploadAll(event.dataTransfer.files);
    });
    // A file dropped beside the zone must not make the browser navigate away from the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (input.files.length) { uploadAll(input.files); input.value = ""; }
    });
  }

  // ---- Review and retry forms inside cards --------------------------------------------------------
  grid.addEventListener("submit", async (event) => {
    const target = event.target;
    if (!target.matches("form[data-ajax]")) return;
    event.preventDefault();
    const card = target.closest(".image-card");
    const error = target.querySelector(".form-error");
    const button = target.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const response = await fetch(target.action, {
        method: "POST",
        body: new FormData(target),
        headers: { ...PARTIAL, "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      if (response.redirected) {
        sessionEnded();
        return;
      }
      const html = await response.text();
      if (response.ok) {
        replaceCard(card, html);
        announce("Saved.");
        pollNow();
        return;
      }
      if (error) { error.textContent = errorText(html) || "Could not save (HTTP " + response.status + ")."; error.hidden = false; }
    } catch (failure) {
      if (error) { error.textContent = "Could not reach the server; try again."; error.hidden = false; }
    }
    if (button) button.disabled = false;
  });

  // ---- History panels -------------------------------------------------------------------------
  async function loadHistory(details) {
    const target = details.querySelector(".history-body");
    try {
      const response = await fetch(details.dataset.url, { credentials: "same-origin" });
      if (response.ok) target.innerHTML = await response.text();
    } catch (error) {
      target.textContent = "The history could not be loaded.";
    }
  }
  grid.addEventListener("toggle", (event) => {
    if (event.target.matches("details.history") && event.target.open) loadHistory(event.target);
  }, true);

  // ---- Heatmaps: made on the first request (static/js/heatmap.js) -------------------------------
  function loadHeatmap(card) {
    const img = card.querySelector("img.heatmap");
    if (!img || img.getAttribute("src") || !img.dataset.src) return;
    // The poll may replace the card meanwhile: find it again by id each time.
    const current = (selector) => { const c = document.getElementById(card.id); return c && c.querySelector(selector); };
    const say = (text) => { const status = current(".heatmap-status"); if (status) status.textContent = text; };
    window.heatmapReady(img.dataset.src, () => say("Preparing heatmap…"))
      .then((src) => {
        const target = current("img.heatmap");
        if (target && !target.getAttribute("src")) target.src = src;
        say("");
      })
      .catch(() => say("The heatmap could not be made; try again later."));
  }
  grid.addEventListener("change", (event) => {
    if (event.target.matches(".heatmap-toggle") && event.target.checked) loadHeatmap(event.target.closest(".image-card"));
  });

  // The enlarged view is static/js/viewer.js (patients/_viewer.html).

  if (summary) summary.dataset.html = "";
  layoutCine(grid);
  schedulePoll();
})();
