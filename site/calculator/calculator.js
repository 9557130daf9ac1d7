/* The calculator page: wires the inputs to tokens.js (globalThis.QwenTokens) and draws the grid. */
(function () {
  "use strict";
  var T = globalThis.QwenTokens;
  function $(id) { return document.getElementById(id); }
  function fmt(n) { return n.toLocaleString("en-US"); }

  function draw(res) {
    var c = $("calc-canvas"), ctx = c.getContext("2d");
    var m = T.MODELS[res.model], px = m.patch * m.merge;
    var rh = res.resized[0], rw = res.resized[1];
    var scale = Math.min((c.width - 2) / rw, (c.height - 2) / rh);
    var w = rw * scale, h = rh * scale;
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.fillStyle = "#e8f0fe";
    ctx.fillRect(1, 1, w, h);
    var mh = res.merged[0], mw = res.merged[1], cell = px * scale;
    ctx.strokeStyle = "#3367d6";
    ctx.lineWidth = 1;
    if (cell >= 3) {
      ctx.beginPath();
      for (var i = 1; i < mw; i++) { ctx.moveTo(1 + i * cell, 1); ctx.lineTo(1 + i * cell, 1 + h); }
      for (var j = 1; j < mh; j++) { ctx.moveTo(1, 1 + j * cell); ctx.lineTo(1 + w, 1 + j * cell); }
      ctx.stroke();
      $("calc-canvas-note").textContent = "each cell: one merged token = " + px + "×" + px + " px (2×2 patches of " +
        m.patch + " px); " + mw + " × " + mh + " cells";
    } else {
      $("calc-canvas-note").textContent = mw + " × " + mh + " merged tokens (too many cells to draw one by one)";
    }
    ctx.strokeStyle = "#1a1a1a";
    ctx.strokeRect(1, 1, w, h);
  }

  function update() {
    var model = $("calc-model").value;
    var h = parseInt($("calc-h").value, 10), w = parseInt($("calc-w").value, 10);
    $("calc-error").textContent = "";
    $("calc-verror").textContent = "";
    try {
      var r = T.imageTokens(h, w, model);
      $("calc-resized").textContent = r.resized[1] + " × " + r.resized[0] + " (W × H)";
      $("calc-grid").textContent = r.grid.join(" × ");
      $("calc-patches").textContent = fmt(r.patches);
      $("calc-tokens").textContent = fmt(r.tokens);
      $("calc-total").textContent = fmt(r.total);
      $("calc-rope").textContent = "t 1, h " + r.rope.h + ", w " + r.rope.w + " → next text id +" + r.rope.next;
      draw(r);
    } catch (e) {
      $("calc-tokens").textContent = "–";
      $("calc-error").textContent = e.message;
    }
    try {
      var v = T.videoTokens(h, w, model, { seconds: parseFloat($("calc-seconds").value),
        videoFps: parseFloat($("calc-vfps").value), fps: parseFloat($("calc-fps").value) });
      $("calc-nframes").textContent = fmt(v.nframes);
      $("calc-frames").textContent = fmt(v.frames);
      $("calc-vresized").textContent = v.resized[1] + " × " + v.resized[0];
      $("calc-vbudget").textContent = fmt(Math.round(v.perFrameMaxPixels));
      $("calc-vgrid").textContent = v.grid.join(" × ");
      $("calc-vtokens").textContent = fmt(v.tokens);
      $("calc-vimages").textContent = fmt(v.asImages);
      $("calc-vrope").textContent = v.rope.next === null ? ("per frame pair h " + v.rope.h + ", w " + v.rope.w +
        "; " + v.rope.note) : ("t " + v.rope.t + ", h " + v.rope.h + ", w " + v.rope.w + " → next text id +" + v.rope.next);
    } catch (e) {
      $("calc-vtokens").textContent = "–";
      $("calc-verror").textContent = e.message;
    }
  }

  function link(numId, rangeId) {
    $(numId).addEventListener("input", function () { $(rangeId).value = $(numId).value; $("calc-preset").value = ""; update(); });
    $(rangeId).addEventListener("input", function () { $(numId).value = $(rangeId).value; $("calc-preset").value = ""; update(); });
  }
  link("calc-h", "calc-h-range");
  link("calc-w", "calc-w-range");
  $("calc-preset").addEventListener("change", function () {
    var v = $("calc-preset").value;
    if (!v) return;
    var hw = v.split("x");
    $("calc-h").value = $("calc-h-range").value = hw[0];
    $("calc-w").value = $("calc-w-range").value = hw[1];
    update();
  });
  ["calc-model", "calc-seconds", "calc-vfps", "calc-fps"].forEach(function (id) {
    $(id).addEventListener("input", update);
    $(id).addEventListener("change", update);
  });
  update();
})();
