#!/usr/bin/env node
/*
 * Headless-browser check of the built site (make site-check): every HTML page of build/site loads in
 * Debian's chromium (driven by playwright-core) with no console error, no page error, no failed request,
 * no broken image and no broken internal link (missing file or missing #anchor); the calculator answers
 * typed and dragged input with the token counts tokens.js computes (tokens.js itself is checked against
 * the Python rules by tests/test_calculator.py). Screenshots of home, a notebook page and the calculator
 * go to $SCREENSHOTS (default /tmp).
 *
 * usage: node site/check/check.js [SITE_DIR]   env: CHROMIUM (default: chromium on PATH)
 */
"use strict";
const fs = require("fs");
const path = require("path");
const http = require("http");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "..", "..");
const SITE = path.resolve(process.argv[2] || path.join(ROOT, "build", "site"));
const SHOTS = process.env.SCREENSHOTS || "/tmp";
const T = require(path.join(ROOT, "site", "calculator", "tokens.js"));
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png",
  ".svg": "image/svg+xml", ".json": "application/json", ".woff2": "font/woff2", ".woff": "font/woff",
  ".ico": "image/x-icon", ".ipynb": "application/json", ".txt": "text/plain", ".gif": "image/gif" };

function listPages(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== "_sources" && e.name !== "_static") out.push(...listPages(p)); }
    else if (e.name.endsWith(".html")) out.push(path.relative(SITE, p).split(path.sep).join("/"));
  }
  return out.sort();
}

function serve() {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, "http://x").pathname);
    let file = path.join(SITE, url);
    if (!file.startsWith(SITE)) { res.writeHead(403); return res.end(); }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
    if (!fs.existsSync(file)) { res.writeHead(404); return res.end("not found"); }
    res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function fail(problems, page, what) { problems.push(`${page}: ${what}`); }

async function checkPage(ctx, base, rel, problems, idsCache) {
  const page = await ctx.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console error: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} (${r.failure() && r.failure().errorText})`));
  page.on("response", (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`); });
  const resp = await page.goto(base + rel, { waitUntil: "load" });
  if (!resp || resp.status() !== 200) fail(problems, rel, `status ${resp && resp.status()}`);
  const info = await page.evaluate(() => ({
    images: Array.from(document.images).map((i) => ({ src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0 })),
    links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.href),
    ids: Array.from(document.querySelectorAll("[id]")).map((e) => e.id),
    title: document.title,
  }));
  idsCache.set(rel, new Set(info.ids));
  for (const e of errors) fail(problems, rel, e);
  for (const img of info.images) if (!img.ok) fail(problems, rel, `broken image ${img.src}`);
  await page.close();
  return info;
}

function idsOf(rel, idsCache) {
  if (idsCache.has(rel)) return idsCache.get(rel);
  const html = fs.readFileSync(path.join(SITE, rel), "utf8");
  const ids = new Set(Array.from(html.matchAll(/\bid="([^"]+)"/g), (m) => m[1]));
  idsCache.set(rel, ids);
  return ids;
}

async function checkCalculator(ctx, base, problems) {
  const page = await ctx.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base + "calculator.html", { waitUntil: "load" });
  const text = async (id) => (await page.textContent("#" + id)).trim();
  const num = (s) => Number(s.replace(/,/g, ""));
  let checks = 0;
  // typed sizes, each model; the expected value from tokens.js (parity-tested against Python)
  const cases = [[224, 224, "qwen2-vl"], [1080, 1920, "qwen3-vl"], [13, 2000, "qwen2.5-vl"], [333, 517, "qwen2-vl"],
                 [4000, 3000, "qwen3-vl"], [100, 100, "qwen3-vl"]];
  for (const [h, w, model] of cases) {
    await page.selectOption("#calc-model", model);
    await page.fill("#calc-h", String(h));
    await page.fill("#calc-w", String(w));
    const want = T.imageTokens(h, w, model);
    const got = num(await text("calc-tokens"));
    if (got !== want.tokens) fail(problems, "calculator.html", `${model} ${h}x${w}: shows ${got} tokens, want ${want.tokens}`);
    const resized = await text("calc-resized");
    if (!resized.startsWith(`${want.resized[1]} × ${want.resized[0]}`)) fail(problems, "calculator.html", `${model} ${h}x${w}: resized '${resized}'`);
    checks++;
  }
  // 224x224 in Qwen2-VL is the course's first fact: 64 merged tokens (66 with vision_start/end)
  await page.selectOption("#calc-model", "qwen2-vl");
  await page.fill("#calc-h", "224");
  await page.fill("#calc-w", "224");
  if (num(await text("calc-tokens")) !== 64 || num(await text("calc-total")) !== 66) fail(problems, "calculator.html", "224x224 is not 64 (+2) tokens");
  // drag: the sliders move the size
  await page.fill("#calc-w-range", "1280");
  await page.fill("#calc-h-range", "720");
  if ((await page.inputValue("#calc-w")) !== "1280") fail(problems, "calculator.html", "the width slider does not move the width box");
  const dragged = T.imageTokens(720, 1280, "qwen2-vl").tokens;
  if (num(await text("calc-tokens")) !== dragged) fail(problems, "calculator.html", `slider 1280x720: want ${dragged}`);
  checks++;
  // video: 60 s at 30 fps, 2 fps sampling
  await page.fill("#calc-seconds", "60");
  await page.fill("#calc-vfps", "30");
  await page.fill("#calc-fps", "2");
  const vwant = T.videoTokens(720, 1280, "qwen2-vl", { seconds: 60, videoFps: 30, fps: 2 });
  const vgot = num(await text("calc-vtokens"));
  if (vgot !== vwant.tokens || vgot !== 23400) fail(problems, "calculator.html", `video 60 s 1280x720: shows ${vgot}, want ${vwant.tokens} (23,400)`);
  checks++;
  // bad input shows an error instead of a number
  await page.fill("#calc-h", "1");
  await page.fill("#calc-w", "500");
  if (!(await text("calc-error")).includes("aspect ratio")) fail(problems, "calculator.html", "1x500 shows no aspect-ratio error");
  checks++;
  await page.selectOption("#calc-model", "qwen2-vl");
  await page.fill("#calc-h", "1080");
  await page.fill("#calc-w", "1920");
  await page.evaluate(() => { document.activeElement && document.activeElement.blur(); document.getElementById("calc").scrollIntoView(); });
  await page.screenshot({ path: path.join(SHOTS, "site_calculator.png") });
  for (const e of errors) fail(problems, "calculator.html", `console: ${e}`);
  await page.close();
  return checks;
}

(async () => {
  const t0 = Date.now();
  if (!fs.existsSync(path.join(SITE, "index.html"))) { console.error(`no site at ${SITE}: run make site`); process.exit(2); }
  const server = await serve();
  const base = `http://127.0.0.1:${server.address().port}/`;
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  const idsCache = new Map();
  const pages = listPages(SITE);
  const required = ["index.html", "calculator.html", "faq.html", "api.html", "search.html", "genindex.html"];
  for (const r of required) if (!pages.includes(r)) fail(problems, r, "missing");
  const nbPages = pages.filter((p) => /^notebooks\/\d\d_[^/]+\.html$/.test(p));
  if (nbPages.length === 0) fail(problems, "notebooks/", "no notebook pages");
  let internal = 0, external = new Set();
  const infos = new Map();
  const queue = pages.slice();
  const worker = async () => { while (queue.length) { const rel = queue.shift(); infos.set(rel, await checkPage(ctx, base, rel, problems, idsCache)); } };
  await Promise.all(Array.from({ length: 4 }, worker));  // 4 tabs at a time
  for (const rel of pages) {
    const info = infos.get(rel);
    for (const href of info.links) {
      if (!href.startsWith(base)) { if (/^https?:/.test(href)) external.add(href); continue; }
      const u = new URL(href);
      let target = decodeURIComponent(u.pathname.slice(1)) || "index.html";
      if (target.endsWith("/")) target += "index.html";
      if (!fs.existsSync(path.join(SITE, target))) { fail(problems, rel, `broken link ${href}`); continue; }
      internal++;
      if (u.hash.length > 1 && target.endsWith(".html") && !idsOf(target, idsCache).has(decodeURIComponent(u.hash.slice(1)))) {
        fail(problems, rel, `broken anchor ${href}`);
      }
    }
  }
  // search works: the index loads and finds a word every lesson uses
  const sp = await ctx.newPage();
  await sp.goto(base + "search.html?q=smart_resize", { waitUntil: "load" });
  await sp.waitForSelector("#search-results li", { timeout: 15000 }).catch(() => fail(problems, "search.html", "no results for smart_resize"));
  await sp.close();
  const checks = await checkCalculator(ctx, base, problems);
  const shots = [["index.html", "site_home.png"], [nbPages[0] || "index.html", "site_notebook.png"]];
  for (const [rel, name] of shots) {
    const p = await ctx.newPage();
    await p.goto(base + rel, { waitUntil: "load" });
    if (rel !== "index.html") await p.evaluate(() => { const i = document.querySelector("main img"); if (i) i.scrollIntoView(); });
    await p.screenshot({ path: path.join(SHOTS, name) });
    await p.close();
  }
  await browser.close();
  server.close();
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`site check: ${pages.length} pages, ${internal} internal links, ${external.size} external links (not fetched: offline), ` +
              `${checks} calculator checks, screenshots in ${SHOTS}, ${secs} s`);
  if (problems.length) {
    console.error(`${problems.length} problem(s):\n  ` + problems.slice(0, 60).join("\n  "));
    process.exit(1);
  }
  console.log("site check: OK");
})().catch((e) => { console.error(e); process.exit(1); });
