// The timeline charts of report.html, drawn with the inlined uPlot from the JSON in #timeline-data: one figure per
// layer group, one uPlot per panel, dashed lines at the snapshots (drawn under the series) and their labels above the
// first panel. Text from
// the scenario (the labels) is set as textContent, never as markup.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
  var HEIGHT = 210;
  var drawn = [];

  function range(fromZero) {
    return function (u, min, max) {
      var low = fromZero ? Math.min(0, min) : min;
      var pad = (max - low) * 0.06 || Math.abs(max) * 0.06 || 1;
      return [fromZero && low === 0 ? 0 : low - pad, max + pad];
    };
  }

  function snapshotLines(u) {
    var ctx = u.ctx, ratio = window.devicePixelRatio || 1;
    ctx.save();
    ctx.strokeStyle = "#999";
    ctx.lineWidth = Math.round(ratio);
    ctx.setLineDash([4 * ratio, 3 * ratio]);
    // An odd width is drawn on a pixel's centre, or it smears over two pixels at half strength.
    var crisp = (ctx.lineWidth % 2) / 2;
    data.snapshots.forEach(function (snapshot) {
      var x = Math.round(u.valToPos(snapshot.seconds, "x", true)) + crisp;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
    });
    ctx.restore();
  }

  function placeLabels(u, box) {
    var boxLeft = box.getBoundingClientRect().left, overLeft = u.over.getBoundingClientRect().left;
    Array.prototype.forEach.call(box.children, function (span, i) {
      span.style.left = (overLeft - boxLeft + u.valToPos(data.snapshots[i].seconds, "x")) + "px";
    });
  }

  function draw(figure, chart) {
    var seconds = chart.panels.reduce(function (all, p) { return all.concat(p.seconds); }, [])
      .concat(data.snapshots.map(function (s) { return s.seconds; }));
    var xMin = Math.min.apply(null, seconds), xMax = Math.max.apply(null, seconds);
    var labels = document.createElement("div");
    labels.className = "snapshot-labels";
    data.snapshots.forEach(function (snapshot) {
      var span = document.createElement("span");
      span.textContent = snapshot.label;
      labels.appendChild(span);
    });
    figure.appendChild(labels);
    var plots = chart.panels.map(function (panel, index) {
      var last = index === chart.panels.length - 1;
      var options = {
        width: figure.clientWidth,
        height: HEIGHT,
        padding: [8, 48, null, null], // room on the right for the last snapshot's label
        scales: { x: { time: false, range: function () { return [xMin, xMax]; } },
                  y: { range: range(panel.from_zero) } },
        axes: [
          { label: last ? "seconds since worker start" : null, labelSize: last ? 24 : 0 },
          { label: panel.unit, size: 70 },
        ],
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        series: [{ label: "seconds" }].concat(panel.series.map(function (series, i) {
          var color = COLORS[i % COLORS.length];
          return { label: series.label, stroke: color, width: 1.5, spanGaps: true,
                   points: { show: series.points, size: 6, fill: color } };
        })),
        hooks: { drawAxes: [snapshotLines] }, // under the lines: a snapshot's line never hides a sample
      };
      var columns = [panel.seconds].concat(panel.series.map(function (series) { return series.values; }));
      var plot = new uPlot(options, columns, figure);
      plot.root.dataset.unit = panel.unit;
      return plot;
    });
    placeLabels(plots[0], labels);
    drawn.push({ layer: chart.title, plots: plots, labels: labels });
  }

  Array.prototype.forEach.call(document.querySelectorAll("figure.chart[data-chart]"), function (figure) {
    draw(figure, data.charts[Number(figure.dataset.chart)]);
  });
  window.addEventListener("resize", function () {
    drawn.forEach(function (chart) {
      chart.plots.forEach(function (plot) { plot.setSize({ width: plot.root.parentNode.clientWidth, height: HEIGHT }); });
      placeLabels(chart.plots[0], chart.labels);
    });
  });
  window.workbenchCharts = drawn; // for whoever inspects the page (the browser test reads the drawn points)
})();
