(function () {
  var data = JSON.parse(document.getElementById("flame-data").textContent);
  var canvas = document.getElementById("flame-canvas"), ctx = canvas.getContext("2d");
  var select = document.getElementById("flame-snapshot"), tip = document.getElementById("flame-tip");
  var info = document.getElementById("flame-info"), ROW = 18, snapshot, focus, rects = [];
  function size(b) {
    var units = ["B", "KiB", "MiB", "GiB"], i = 0, v = b;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + " " + units[i];
  }
  function name(node) { return node[0] < 0 ? "all live native memory at '" + snapshot.label + "'" : data.frames[node[0]]; }
  function color(node) {
    if (node[0] < 0) return "#c9ced6";
    var kind = data.kinds.charAt(node[0]), h = 0, n = data.frames[node[0]];
    for (var i = 0; i < n.length; i++) h = (h * 31 + n.charCodeAt(i)) | 0;
    var jitter = Math.abs(h) % 20;
    if (kind === "J") return "hsl(" + (100 + jitter) + ",45%," + (58 + jitter / 4) + "%)";
    if (kind === "C") return "hsl(" + (42 + jitter / 2) + ",75%," + (58 + jitter / 4) + "%)";
    return "hsl(" + (12 + jitter) + ",68%," + (62 + jitter / 4) + "%)";
  }
  function depth(node) { var d = 0; node[2].forEach(function (c) { d = Math.max(d, depth(c)); }); return d + 1; }
  function draw() {
    var width = canvas.parentElement.clientWidth, ratio = window.devicePixelRatio || 1, levels = depth(focus);
    canvas.width = width * ratio; canvas.height = levels * ROW * ratio; canvas.style.height = levels * ROW + "px";
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0); ctx.font = "12px system-ui, sans-serif"; rects = [];
    (function paint(node, x, w, level) {
      if (w < 0.3) return;
      ctx.fillStyle = color(node); ctx.fillRect(x, level * ROW, Math.max(w - 0.5, 0.3), ROW - 1);
      if (w > 28) {
        var text = name(node), room = Math.floor((w - 6) / 6.5);
        ctx.fillStyle = "#111"; ctx.fillText(text.length > room ? text.slice(0, Math.max(room - 1, 1)) + "…" : text, x + 3, level * ROW + 13);
      }
      rects.push([x, level * ROW, w, node]);
      var cx = x;
      node[2].forEach(function (c) { var cw = w * c[1] / node[1]; paint(c, cx, cw, level + 1); cx += cw; });
    })(focus, 0, width, 0);
    info.textContent = size(snapshot.total) + " live" + (focus !== snapshot.tree ? "; zoomed into " + name(focus) + " (" + size(focus[1]) + ")" : "");
  }
  function at(event) {
    var box = canvas.getBoundingClientRect(), x = event.clientX - box.left, y = event.clientY - box.top;
    for (var i = rects.length - 1; i >= 0; i--) {
      var r = rects[i];
      if (x >= r[0] && x < r[0] + r[2] && y >= r[1] && y < r[1] + ROW) return r[3];
    }
    return null;
  }
  canvas.addEventListener("mousemove", function (event) {
    var node = at(event);
    if (!node) { tip.style.display = "none"; return; }
    tip.textContent = name(node) + " — " + size(node[1]) + " (" + (100 * node[1] / Math.max(snapshot.total, 1)).toFixed(1) + " %)";
    tip.style.display = "block";
    var box = canvas.getBoundingClientRect();
    tip.style.left = Math.min(event.clientX - box.left + 12, box.width - 260) + "px";
    tip.style.top = (event.clientY - box.top + 14) + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("click", function (event) {
    var node = at(event);
    if (node) { focus = node === focus ? snapshot.tree : node; draw(); }
  });
  function show() {
    snapshot = data.snapshots[Number(select.value)]; focus = snapshot.tree; draw();
    document.querySelectorAll("#call-sites .site-table").forEach(function (table) {
      table.style.display = table.getAttribute("data-label") === snapshot.label ? "" : "none";
    });
  }
  select.addEventListener("change", show);
  window.addEventListener("resize", draw);
  show();
})();
