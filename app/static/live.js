// AAPT Live page script: keyboard control of the world camera, the displayed-fps counter and the
// control-to-frame latency measured in this page, and starting/stopping the webcam with the stream.
// Loaded into <head>; Gradio renders later, so elements are looked up lazily by id.
(() => {
  if (window.aapt) return;
  const KEYS = new Set(["arrowleft", "arrowright", "arrowup", "arrowdown", "w", "a", "s", "d", "q", "e", "r", "f"]);
  const A = (window.aapt = {
    held: new Set(),    // keys held now
    seq: 0,             // sequence number of the last key state sent
    keystate: "0|",     // "seq|key,key" read by the hidden keys button's event
    sent: new Map(),    // seq -> performance.now() when sent, until a frame reflects it
    frames: 0,          // frames displayed (img load events)
    updates: 0,         // frames received (img src changes); updates - frames = superseded before shown
    loads: [],          // load times of the last 2 s
    latencies: [],      // key -> first displayed frame reflecting it, ms (last 20, for the readout)
    allLatencies: [],   // the same, last 1000 (for benchmarks)
    delivery: [],       // server hand-off -> displayed, ms (last 100)
    metaBySrc: new Map(),
    shownSeq: 0,
  });
  const $ = (sel) => document.querySelector(sel);
  const visible = (el) => !!el && el.offsetParent !== null;
  const typing = (el) => !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  const worldActive = () => visible($("#aapt-world"));
  const push = (arr, v, n) => { arr.push(v); while (arr.length > n) arr.shift(); };

  // ---------------------------------------------------------------- keyboard -> server
  function send() {
    A.seq += 1;
    A.keystate = A.seq + "|" + [...A.held].join(",");
    A.sent.set(A.seq, performance.now());
    if (A.sent.size > 64) A.sent.delete(A.sent.keys().next().value);
    const btn = $("#aapt-keys-btn");
    if (btn) btn.click();
  }
  const keyName = (e) => { const k = (e.key || "").toLowerCase(); return KEYS.has(k) ? k : null; };
  document.addEventListener("keydown", (e) => {
    const k = keyName(e);
    if (!k || typing(e.target) || e.ctrlKey || e.metaKey || e.altKey || !worldActive()) return;
    e.preventDefault();                       // arrows must not scroll the page
    if (e.repeat || A.held.has(k)) return;    // only changes of the held set are sent
    A.held.add(k);
    send();
  }, true);
  document.addEventListener("keyup", (e) => {
    const k = keyName(e);
    if (!k || !A.held.has(k)) return;
    A.held.delete(k);
    send();
  }, true);
  window.addEventListener("blur", () => { if (A.held.size) { A.held.clear(); send(); } });

  // ---------------------------------------------------------------- frames: received, displayed
  // Every frame changes the output <img>'s src; the hidden meta box, updated in the same message,
  // says "f=<frame>;c=<newest key seq it reflects>;t=<server hand-off, ms since epoch>".
  function meta() {
    const el = $("#aapt-meta textarea, #aapt-meta input");
    const m = /f=(\d+);c=(\d+);t=([\d.]+)/.exec(el ? el.value : "");
    return m ? { f: +m[1], c: +m[2], t: +m[3] } : null;
  }
  new MutationObserver((muts) => {
    for (const m of muts) {
      const t = m.target;
      if (t.tagName !== "IMG" || !t.closest || !t.closest("#aapt-out")) continue;
      A.updates += 1;
      const mm = meta();
      if (mm) A.metaBySrc.set(t.getAttribute("src"), mm);
      if (A.metaBySrc.size > 32) A.metaBySrc.delete(A.metaBySrc.keys().next().value);
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["src"] });
  document.addEventListener("load", (e) => {
    const t = e.target;
    if (!t || t.tagName !== "IMG" || !t.closest || !t.closest("#aapt-out")) return;
    const now = performance.now();
    A.frames += 1;
    A.loads.push(now);
    while (A.loads.length && now - A.loads[0] > 2000) A.loads.shift();
    const mm = A.metaBySrc.get(t.getAttribute("src"));
    if (!mm) return;
    push(A.delivery, Date.now() - mm.t, 100);
    if (mm.c > A.shownSeq) {
      for (const [s, t0] of A.sent) {
        if (s > mm.c) continue;
        if (s > A.shownSeq) { push(A.latencies, now - t0, 20); push(A.allLatencies, now - t0, 1000); }
        A.sent.delete(s);
      }
      A.shownSeq = mm.c;
    }
  }, true);

  A.fps = () => {
    const n = A.loads.length;
    if (n < 2 || performance.now() - A.loads[n - 1] > 1500) return 0;
    return (n - 1) / ((A.loads[n - 1] - A.loads[0]) / 1000);
  };
  const median = (xs) => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
  A.latency = () => median(A.latencies);
  setInterval(() => {
    const el = $("#aapt-client-hud");
    if (!el) return;
    const lat = A.latency();
    el.textContent = `page: ${A.fps().toFixed(1)} fps displayed` +
      (lat !== null ? ` · key→frame ${lat.toFixed(0)} ms` : "") +
      (A.held.size ? ` · keys: ${[...A.held].join(" ")}` : "");
  }, 500);

  // ---------------------------------------------------------------- webcam with the stream
  // Gradio's webcam: a "grant webcam access" button, then a capture button whose icon title says
  // "start recording" or, while streaming, "stop recording".
  A.startWebcam = (tries = 0) => {
    const cam = $("#aapt-webcam");
    const source = $("#aapt-source input[value='Webcam']");
    if (!cam || !visible(cam) || (source && !source.checked)) return;
    const grant = cam.querySelector("[title='grant webcam access'] button");
    const rec = cam.querySelector("button.capture-button, button[aria-label='capture photo']");
    if (grant) grant.click();
    if (grant || !rec) {
      if (tries < 20) setTimeout(() => A.startWebcam(tries + 1), 300);
      return;
    }
    if (rec.querySelector("[title='start recording']")) rec.click();
  };
  A.stopWebcam = () => {
    const cam = $("#aapt-webcam");
    const rec = cam && cam.querySelector("button.capture-button, button[aria-label='capture photo']");
    if (rec && rec.querySelector("[title='stop recording']")) rec.click();
  };
})();
