// The dashboard's own script: it draws the stats page's time series with uPlot.
// Everything else works without it (the pages are rendered on the server, htmx polls).
"use strict";

function drawSeries(el) {
  const data = JSON.parse(el.dataset.series);
  const width = Math.max(320, Math.min(900, el.parentElement.clientWidth - 10));
  const opts = {
    width: width,
    height: 220,
    scales: { x: { time: true }, n: { auto: true }, s: { auto: true } },
    axes: [
      {},
      { scale: "n", label: "sagas" },
      { scale: "s", side: 1, label: "p95 s", grid: { show: false } },
    ],
    series: [
      {},
      { label: "started", scale: "n", stroke: "#1f6fd1", width: 2 },
      { label: "completed", scale: "n", stroke: "#1f8a4c", width: 2 },
      { label: "ended otherwise", scale: "n", stroke: "#c0392b", width: 2 },
      { label: "p95 duration (s)", scale: "s", stroke: "#e08a1e", width: 2, dash: [6, 4] },
    ],
  };
  el.replaceChildren();
  new uPlot(opts, [data.x, data.started, data.completed, data.failed, data.p95], el);
  el.dataset.drawn = "true";
}

document.addEventListener("DOMContentLoaded", function () {
  for (const el of document.querySelectorAll(".timeseries[data-series]")) {
    drawSeries(el);
  }
});
