/* Charts from data-chart attributes (JSON written by the server): no inline script anywhere. */
(function () {
  "use strict";
  function font() {  /* the body's computed font stack (console.css puts the CJK fonts in it) */
    var family = window.getComputedStyle(document.body).fontFamily;
    return family || "sans-serif";
  }
  function draw(root) {
    if (!window.echarts) { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) { return; }
      var spec = JSON.parse(el.dataset.chart);
      var names = Object.keys(spec.series);
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption({
        animation: false,
        textStyle: { fontFamily: font() },  // the page's CJK font, not ECharts' sans-serif
        tooltip: { trigger: "axis" },
        legend: names.length > 1 ? { data: names } : undefined,
        grid: { left: 48, right: 16, top: names.length > 1 ? 32 : 16, bottom: 28 },
        xAxis: { type: "category", data: spec.labels },
        yAxis: { type: "value", minInterval: 1 },
        color: ["#0b5cad", "#e5793b", "#4a8bd3"],
        series: names.map(function (n) { return { name: n, type: spec.kind, data: spec.series[n], label: { show: spec.kind === "bar", position: "top" } }; })
      });
      el.dataset.drawn = "1";
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (e) { draw(e.target); });
})();
