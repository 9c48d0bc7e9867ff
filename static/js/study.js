// Poll the study's images until every job has finished, then reload once to show results.
(function () {
  const section = document.getElementById("images");
  if (!section) return;
  const pending = () => section.querySelectorAll('[data-status="QUEUED"], [data-status="RUNNING"]').length;
  if (!pending()) return;
  const timer = setInterval(async () => {
    const response = await fetch(section.dataset.pollUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const body = await response.json();
    const unfinished = body.images.filter((img) => img.job && ["QUEUED", "RUNNING"].includes(img.job.status));
    if (!unfinished.length) { clearInterval(timer); window.location.reload(); }
  }, 1500);
})();
