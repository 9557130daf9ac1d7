/*
 * tokens.js: how many LLM tokens an image or a video costs in Qwen2-VL, Qwen2.5-VL and Qwen3-VL.
 *
 * Plain JavaScript, no build step. Loaded as a classic <script> or as an ES module it sets
 * globalThis.QwenTokens; under node, require("./tokens.js") returns the same object.
 * tests/test_calculator.py runs this very file under node and checks it equals the Python functions
 * (qwenvl_study.smart_resize / count_image_tokens / plan_video, and transformers' own smart_resize of
 * each model's processor) on thousands of random sizes.
 *
 * Rules (the Python references, read top to bottom):
 *   image:  transformers/models/qwen2_vl/image_processing_pil_qwen2_vl.py::smart_resize
 *           (Qwen2-VL and Qwen2.5-VL: 14 px patches, 28 px per merged token, 3136..12845056 pixels;
 *            Qwen3-VL reuses that processor with 16 px patches: 32 px, 65536..16777216 pixels)
 *   video:  Qwen2-VL:   qwen-vl-utils 0.0.8 (qwenvl_study.plan_video, preset "0.0.8")
 *           Qwen2.5-VL: qwen-vl-utils 0.0.10 (preset "0.0.10")
 *           Qwen3-VL:   transformers' Qwen3VLVideoProcessor (sample_frames + 3-D smart_resize,
 *                       its class defaults; no per-frame cap)
 * Python's round() rounds halves to even; Math.round does not, hence pyRound below.
 */
(function (root) {
  "use strict";

  var MODELS = {
    "qwen2-vl": {
      label: "Qwen2-VL", patch: 14, merge: 2, temporal: 2, minPixels: 56 * 56, maxPixels: 28 * 28 * 16384,
      video: { kind: "qwen-vl-utils", preset: "0.0.8", totalPixels: 24576 * 28 * 28, rounding: "round",
               minPixels: 128 * 28 * 28, maxPixels: 768 * 28 * 28, fps: 2, minFrames: 4, maxFrames: 768 },
      rope: "mrope"
    },
    "qwen2.5-vl": {
      label: "Qwen2.5-VL", patch: 14, merge: 2, temporal: 2, minPixels: 56 * 56, maxPixels: 28 * 28 * 16384,
      video: { kind: "qwen-vl-utils", preset: "0.0.10", totalPixels: Math.trunc(128000 * 28 * 28 * 0.9),
               rounding: "floor", minPixels: 128 * 28 * 28, maxPixels: 768 * 28 * 28, fps: 2, minFrames: 4,
               maxFrames: 768 },
      rope: "mrope-absolute-time"
    },
    "qwen3-vl": {
      label: "Qwen3-VL", patch: 16, merge: 2, temporal: 2, minPixels: 65536, maxPixels: 16777216,
      video: { kind: "qwen3-vl", minPixels: 128 * 32 * 32, maxPixels: 32 * 32 * 768, fps: 2, minFrames: 4,
               maxFrames: 768 },
      rope: "interleaved-mrope-timestamps"
    }
  };

  function model(name) {
    var m = MODELS[name || "qwen2-vl"];
    if (!m) throw new Error("unknown model " + JSON.stringify(name) + "; one of " + Object.keys(MODELS).join(", "));
    return m;
  }

  function checkSide(name, v) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw new Error(name + " must be an integer >= 1, got " + v);
    }
  }

  /* Python's round(x) for finite x: the nearest integer, halves to even. */
  function pyRound(x) {
    var f = Math.floor(x), d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return f % 2 === 0 ? f : f + 1;
  }
  function roundBy(x, f) { return pyRound(x / f) * f; }
  function ceilBy(x, f) { return Math.ceil(x / f) * f; }
  function floorBy(x, f) { return Math.floor(x / f) * f; }

  /*
   * (height, width) an image is resized to. opts: factor (28), minPixels (3136), maxPixels (12845056),
   * rule ("transformers" | "qwen-vl-utils": the latter clamps each rounded side to >= factor first).
   * Returns [h, w].
   */
  function smartResize(h, w, opts) {
    opts = opts || {};
    var factor = opts.factor || 28;
    var minPixels = opts.minPixels !== undefined ? opts.minPixels : 56 * 56;
    var maxPixels = opts.maxPixels !== undefined ? opts.maxPixels : 28 * 28 * 16384;
    checkSide("height", h);
    checkSide("width", w);
    if (minPixels > maxPixels) throw new Error("minPixels=" + minPixels + " is larger than maxPixels=" + maxPixels);
    var ratio = Math.max(h, w) / Math.min(h, w);
    if (ratio > 200) throw new Error("aspect ratio " + ratio.toFixed(2) + " of a " + h + "x" + w + " image exceeds the limit of 200");
    var hb = roundBy(h, factor), wb = roundBy(w, factor);
    if (opts.rule === "qwen-vl-utils") { hb = Math.max(factor, hb); wb = Math.max(factor, wb); }
    var beta;
    if (hb * wb > maxPixels) {
      beta = Math.sqrt((h * w) / maxPixels);
      hb = Math.max(factor, floorBy(h / beta, factor));
      wb = Math.max(factor, floorBy(w / beta, factor));
    } else if (hb * wb < minPixels) {
      beta = Math.sqrt(minPixels / (h * w));
      hb = ceilBy(h * beta, factor);
      wb = ceilBy(w * beta, factor);
    }
    return [hb, wb];
  }

  /* Qwen3-VL's video smart_resize (3-D: the pixel budget counts the frames). */
  function smartResize3d(t, h, w, factor, minPixels, maxPixels) {
    if (t < 2) throw new Error("a Qwen3-VL video needs >= 2 frames, got " + t);
    if (h < factor || w < factor) {
      var scale = Math.max(factor / h, factor / w);
      h = Math.trunc(h * scale);
      w = Math.trunc(w * scale);
    }
    var ratio = Math.max(h, w) / Math.min(h, w);
    if (ratio > 200) throw new Error("aspect ratio " + ratio.toFixed(2) + " exceeds the limit of 200");
    var hb = roundBy(h, factor), wb = roundBy(w, factor), tb = roundBy(t, 2), beta;
    if (tb * hb * wb > maxPixels) {
      beta = Math.sqrt((t * h * w) / maxPixels);
      hb = Math.max(factor, floorBy(h / beta, factor));
      wb = Math.max(factor, floorBy(w / beta, factor));
    } else if (tb * hb * wb < minPixels) {
      beta = Math.sqrt(minPixels / (t * h * w));
      hb = ceilBy(h * beta, factor);
      wb = ceilBy(w * beta, factor);
    }
    return [hb, wb];
  }

  /*
   * One image: {resized: [h, w], grid: [t, gh, gw] in patches, merged: [gh/2, gw/2], patches,
   * tokens (merged tokens = <|image_pad|> count), total (+2 for <|vision_start|>/<|vision_end|>),
   * rope: {t, h, w, next}: the M-RoPE id ranges of the image and how far the next text id moves}.
   */
  function imageTokens(h, w, modelName) {
    var m = model(modelName), f = m.patch * m.merge;
    var r = smartResize(h, w, { factor: f, minPixels: m.minPixels, maxPixels: m.maxPixels });
    var gh = r[0] / m.patch, gw = r[1] / m.patch;
    var mh = gh / m.merge, mw = gw / m.merge, tokens = mh * mw;
    return {
      model: modelName || "qwen2-vl", resized: r, grid: [1, gh, gw], merged: [mh, mw], patches: gh * gw,
      tokens: tokens, total: tokens + 2,
      rope: { t: 1, h: mh, w: mw, next: Math.max(1, mh, mw) }
    };
  }

  /*
   * A video of `seconds` at `videoFps` (frames in the file = round(seconds * videoFps)), sampled at
   * opts.fps (default 2). Returns {frames, nframes, resized, grid, tokens, total, perFrameMaxPixels,
   * rope}. Frames go in pairs (temporal patch 2): tokens = ceil(nframes/2) * gh*gw / 4 — the temporal
   * merge halves the tokens of nframes separate images.
   */
  function videoTokens(h, w, modelName, opts) {
    opts = opts || {};
    var m = model(modelName), v = m.video, f = m.patch * m.merge;
    checkSide("height", h);
    checkSide("width", w);
    var videoFps = opts.videoFps || 30, fps = opts.fps || v.fps;
    var frames = opts.totalFrames || Math.max(1, pyRound((opts.seconds || 1) * videoFps));
    var nframes, r, maxPx;
    if (v.kind === "qwen-vl-utils") {
      var minF = ceilBy(v.minFrames, 2), maxF = floorBy(Math.min(v.maxFrames, frames), 2);
      var n = frames / videoFps * fps;
      if (v.rounding === "round") nframes = roundBy(Math.min(Math.max(n, minF), maxF), 2);
      else nframes = floorBy(Math.min(Math.min(Math.max(n, minF), maxF), frames), 2);
      if (!(nframes >= 2 && nframes <= frames)) {
        throw new Error("nframes must lie in [2, " + frames + "] (the video's frame count), got " + nframes);
      }
      var share = v.totalPixels / nframes * 2;
      maxPx = Math.max(Math.min(v.maxPixels, share), Math.trunc(v.minPixels * 1.05));
      r = smartResize(h, w, { factor: f, minPixels: v.minPixels, maxPixels: maxPx, rule: "qwen-vl-utils" });
    } else {
      nframes = Math.trunc(frames / videoFps * fps);
      nframes = Math.min(Math.max(nframes, v.minFrames), v.maxFrames, frames);
      maxPx = v.maxPixels;
      r = smartResize3d(nframes, h, w, f, v.minPixels, v.maxPixels);
    }
    var gt = Math.ceil(nframes / m.temporal), gh = r[0] / m.patch, gw = r[1] / m.patch;
    var mh = gh / m.merge, mw = gw / m.merge, tokens = gt * mh * mw;
    var rope;
    if (m.rope === "mrope") rope = { t: gt, h: mh, w: mw, next: Math.max(gt, mh, mw) };
    else if (m.rope === "mrope-absolute-time") {
      var step = (m.temporal / fps) * 2; /* second_per_grid_t * tokens_per_second (2) */
      var tExt = Math.trunc((gt - 1) * step) + 1;
      rope = { t: tExt, h: mh, w: mw, next: Math.max(tExt, mh, mw) };
    } else rope = { t: 1, h: mh, w: mw, next: null, note: "each frame pair follows a text timestamp" };
    return {
      model: modelName || "qwen2-vl", frames: frames, nframes: nframes, resized: r, grid: [gt, gh, gw],
      merged: [mh, mw], tokens: tokens, total: tokens + 2, perFrameMaxPixels: maxPx,
      asImages: nframes * mh * mw, rope: rope
    };
  }

  var api = { MODELS: MODELS, pyRound: pyRound, smartResize: smartResize, smartResize3d: smartResize3d,
              imageTokens: imageTokens, videoTokens: videoTokens };
  if (typeof module === "object" && module && module.exports) module.exports = api;
  root.QwenTokens = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
