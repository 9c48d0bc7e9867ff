// Heatmaps are made when someone first asks (the worker's heatmaps queue): an image's heatmap URL answers
// 202 with Retry-After while it is being made, then the PNG. heatmapReady(url, onWaiting) asks until the PNG
// comes and resolves to an object URL of it; the card's toggle and the viewer share one request per image.
(function () {
  "use strict";
  const MAX_TRIES = 60;
  const ready = new Map();
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

  async function fetchWhenMade(url, onWaiting) {
    for (let tries = 0; tries < MAX_TRIES; tries += 1) {
      const response = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (response.redirected) { window.location.reload(); throw new Error("session ended"); }
      if (response.status === 200) return URL.createObjectURL(await response.blob());
      if (response.status !== 202) throw new Error("heatmap: HTTP " + response.status);
      onWaiting();
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      await sleep(Math.min(Math.max(seconds, 0.5), 10) * 1000);
    }
    throw new Error("heatmap: not made in time");
  }

  window.heatmapReady = (url, onWaiting) => {
    if (!ready.has(url)) {
      // A failure is forgotten, so the next toggle asks again.
      ready.set(url, fetchWhenMade(url, onWaiting || (() => {})).catch((error) => { ready.delete(url); throw error; }));
    }
    return ready.get(url);
  };
})();
