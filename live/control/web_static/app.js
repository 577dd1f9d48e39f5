// The phosphene control page: draws the surface the engine describes (GET /surface), sends
// every move as an OSC-shaped message {"address", "args"} over one WebSocket (/ws), and shows
// the status the engine pushes on it. No build step, no framework: plain DOM.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;

let socket = null;
let surfaceId = null;
const faders = new Map();        // parameter name -> {input, value, touchedUntil}
const learnButtons = new Map();  // parameter name -> button
const toggles = new Map();       // effect name -> checkbox
const pads = [];                 // {spec, place, touchedUntil}: the dots follow the show too
let keyframeButtons = [];

// -- sending -----------------------------------------------------------------------------------
// A fader sends at most once per animation frame: the newest value wins.
const queued = new Map();
let flushing = false;
function send(address, args = []) {
  queued.set(address, args);
  if (!flushing) {
    flushing = true;
    requestAnimationFrame(flush);
  }
}
function flush() {
  flushing = false;
  for (const [address, args] of queued) {
    const text = JSON.stringify({address, args});
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(text);
    } else {       // no socket yet (or it dropped): the same message as a POST
      fetch(withToken("osc"), {method: "POST", headers: {"Content-Type": "application/json"}, body: text})
        .then((r) => r.ok ? null : r.json().then(showError)).catch(() => {});
    }
  }
  queued.clear();
}
// a button press is never merged with another
function press(address, args = []) {
  flush();
  queued.set(address, args);
  flush();
}

// -- messages ----------------------------------------------------------------------------------
function showError(answer) {
  const box = document.getElementById("messages");
  const line = document.createElement("div");
  line.className = "error";
  line.textContent = (answer.address ? answer.address + ": " : "") + answer.error;
  box.prepend(line);
  while (box.children.length > 4) box.lastChild.remove();
  setTimeout(() => line.remove(), 6000);
}

// -- building the surface ----------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function section(title, ...children) {
  return el("details", {open: true, class: "section"}, el("summary", {}, title), ...children);
}

function button(b, cls = "") {
  const node = el("button", {class: cls, title: b.help || b.address, "data-address": b.address}, b.label);
  if (b.args.length) node.setAttribute("data-args", JSON.stringify(b.args));
  node.addEventListener("click", () => press(b.address, b.args));
  return node;
}

const digits = (f) => (f.maximum - f.minimum) >= 20 ? 1 : 3;

function fader(f) {
  const input = el("input", {type: "range", min: f.minimum, max: f.maximum, step: "any",
                             value: f.default, "data-param": f.name, "data-address": f.address});
  const value = el("output", {class: "value"}, Number(f.default).toFixed(digits(f)));
  const entry = {input, value, touchedUntil: 0, spec: f};
  const touch = () => { entry.touchedUntil = performance.now() + 800; };
  input.addEventListener("pointerdown", touch);
  input.addEventListener("input", () => {
    touch();
    value.textContent = Number(input.value).toFixed(digits(f));
    send(f.address, [Number(input.value)]);
  });
  faders.set(f.name, entry);
  const row = el("div", {class: "fader", title: f.help || f.name},
                 el("label", {}, f.label), input, value);
  if (f.learn) {
    const learn = el("button", {class: "learn", title: `MIDI learn: the next CC moved controls ${f.name}`,
                                "data-learn": f.name}, "learn");
    learn.addEventListener("click", () => press("/phosphene/midi/learn", [f.name]));
    learnButtons.set(f.name, learn);
    row.append(learn);
  }
  return row;
}

function pad(p) {
  const dot = el("div", {class: "dot"});
  const area = el("div", {class: "xy", "data-x": p.x.name, "data-y": p.y.name}, dot);
  const place = (fx, fy) => { dot.style.left = `${fx * 100}%`; dot.style.top = `${(1 - fy) * 100}%`; };
  const norm = (f, v) => (v - f.minimum) / ((f.maximum - f.minimum) || 1);
  place(norm(p.x, p.x.default), norm(p.y, p.y.default));
  const entry = {spec: p, touchedUntil: 0, follow: (vx, vy) => place(norm(p.x, vx), norm(p.y, vy))};
  pads.push(entry);
  const move = (e) => {
    entry.touchedUntil = performance.now() + 800;
    const r = area.getBoundingClientRect();
    const fx = Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1);
    const fy = Math.min(Math.max(1 - (e.clientY - r.top) / r.height, 0), 1);
    place(fx, fy);
    for (const [f, t] of [[p.x, fx], [p.y, fy]]) {
      const v = f.minimum + t * (f.maximum - f.minimum);
      send(f.address, [v]);
      const entry = faders.get(f.name);
      if (entry) { entry.input.value = v; entry.value.textContent = v.toFixed(digits(f)); entry.touchedUntil = performance.now() + 800; }
    }
  };
  area.addEventListener("pointerdown", (e) => { area.setPointerCapture(e.pointerId); move(e); });
  area.addEventListener("pointermove", (e) => { if (area.hasPointerCapture(e.pointerId)) move(e); });
  return el("div", {class: "pad"}, el("label", {}, p.label), area);
}

function buildSurface(s) {
  faders.clear(); learnButtons.clear(); toggles.clear(); pads.length = 0;
  const byAddress = new Map(s.buttons.map((b) => [b.address, b]));
  const take = (...names) => names.map((n) => byAddress.get(`/phosphene/${n}`)).filter(Boolean)
    .map((b) => { byAddress.delete(b.address); return b; });
  const root = document.getElementById("surface");
  root.replaceChildren();

  const safety = take("blackout", "freeze", "panic");
  root.append(el("div", {class: "row safety"},
    ...safety.map((b) => button(b, b.address.endsWith("panic") ? "danger" : "")),
    ...take("tempo/tap").map((b) => button(b, "tap"))));

  root.append(section("Keyframes",
    el("div", {class: "row"}, ...take("keyframe/prev", "keyframe/next", "keyframe/capture").map((b) => button(b, "big"))),
    el("div", {class: "row wrap"}, ...(keyframeButtons = s.keyframes.map((b) => button(b, "goto"))))));

  root.append(section("Parameters", ...s.parameters.map(fader)));
  if (s.pads.length) root.append(section("XY pads", el("div", {class: "row wrap"}, ...s.pads.map(pad))));
  if (s.modes.length) root.append(section("Modes", ...s.modes.map(fader)));
  if (s.effects.length) {
    root.append(section("Effects", ...s.effects.map((fx) => {
      const box = el("input", {type: "checkbox", checked: true, "data-effect": fx.name});
      box.addEventListener("change", () => press(fx.enable_address, [box.checked ? 1 : 0]));
      toggles.set(fx.name, box);
      return el("div", {class: "effect"}, el("label", {class: "switch"}, box, " " + fx.name),
                ...fx.faders.map((f) => fader({...f, name: f.name})));
    })));
  }
  root.append(section("Presets",
    el("div", {class: "row"}, ...take("preset/prev", "preset/next").map((b) => button(b, "big"))),
    el("div", {class: "row wrap"}, ...s.presets.map((b) => button(b, b.label === s.preset ? "current" : "")))));
  const clipStop = take("clip/stopall");
  if (s.clips.length) {
    root.append(section("Clips", el("div", {class: "row wrap"}, ...clipStop.map((b) => button(b, "danger")),
      ...s.clips.map((b) => button(b)), ...s.clip_stop.map((b) => button(b, "quiet")))));
  }
  root.append(section("MIDI", el("p", {class: "hint"},
    "learn: press a fader's learn button, then move a knob; the binding is saved into the preset."),
    el("div", {class: "row"}, ...take("midi/cancel").map((b) => button(b)))));
  const rest = [...byAddress.values()];
  if (rest.length) root.append(section("More", el("div", {class: "row wrap"}, ...rest.map((b) => button(b)))));
  document.body.dataset.surface = "ready";
}

async function loadSurface() {
  const r = await fetch(withToken("surface"));
  if (!r.ok) { showError(await r.json()); return; }
  buildSurface(await r.json());
}

// -- status ------------------------------------------------------------------------------------
function fmt(v, d = 1) { return (v === null || v === undefined) ? "–" : Number(v).toFixed(d); }

function showStatus(st) {
  // the page loaded the surface at start; a preset switch or a captured keyframe changes it
  if (surfaceId !== null && st.surface !== surfaceId) loadSurface();
  surfaceId = st.surface;
  document.getElementById("preset").textContent = st.preset || "–";
  document.getElementById("keyframe").textContent = st.keyframes ? `keyframe ${st.keyframe + 1}/${st.keyframes}` : "keyframe –";
  document.getElementById("tempo").textContent = st.tempo_bpm > 0 ? `${fmt(st.tempo_bpm)} BPM` : "– BPM";
  document.getElementById("onsets").textContent = `onsets ${st.onsets}`;
  document.getElementById("fps").textContent = `display ${fmt(st.fps)} fps`;
  document.getElementById("genfps").textContent = `generator ${fmt(st.generator_fps)} fps`;
  document.getElementById("errors").textContent = `${st.errors} error${st.errors === 1 ? "" : "s"}`;
  document.getElementById("level").style.width = `${Math.round(100 * (st.level || 0))}%`;
  const beat = st.tempo_bpm > 0 ? Math.max(1 - 4 * (st.beat_phase || 0), 0) : 0;
  document.getElementById("beat").style.opacity = 0.15 + 0.85 * beat;
  const flags = [];
  if (st.blackout > 0) flags.push(st.blackout >= 1 ? "BLACKOUT" : "fading");
  if (st.frozen) flags.push("FROZEN");
  if (st.midi_learn) flags.push(`MIDI learn: move a control for ${st.midi_learn}`);
  if (!st.midi) flags.push("no MIDI input");
  document.getElementById("flags").textContent = flags.join(" · ");
  document.body.dataset.keyframe = st.keyframe;
  const now = performance.now();
  for (const [name, entry] of faders) {
    const v = st.values ? st.values[name] : undefined;
    if (v === undefined || v === null || now < entry.touchedUntil) continue;
    entry.input.value = v;
    entry.value.textContent = Number(v).toFixed(digits(entry.spec));
  }
  for (const pad of pads) {
    const vx = st.values && st.values[pad.spec.x.name], vy = st.values && st.values[pad.spec.y.name];
    if (vx != null && vy != null && now >= pad.touchedUntil) pad.follow(vx, vy);
  }
  keyframeButtons.forEach((b, i) => b.classList.toggle("current", i === st.keyframe));
  for (const [name, b] of learnButtons) b.classList.toggle("armed", st.midi_learn === name);
  for (const [name, box] of toggles) {
    if (st.effects_enabled && name in st.effects_enabled) box.checked = st.effects_enabled[name];
  }
}

// -- the socket --------------------------------------------------------------------------------
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(withToken(`${scheme}://${location.host}/ws`));
  const link = document.getElementById("link");
  socket.onopen = () => { link.textContent = "live"; link.className = "badge on"; document.body.dataset.link = "open"; };
  socket.onclose = () => {
    link.textContent = "offline"; link.className = "badge off"; document.body.dataset.link = "closed";
    setTimeout(connect, 1000);
  };
  socket.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.status) showStatus(message.status);
    else if (message.error) showError(message);
  };
}

// -- the preview -------------------------------------------------------------------------------
let previewCount = 0;
function refreshPreview() {
  const img = document.getElementById("preview");
  const next = new Image();
  next.onload = () => { img.src = next.src; setTimeout(refreshPreview, 500); };
  next.onerror = () => setTimeout(refreshPreview, 1000);
  next.src = withToken(`preview.jpg?n=${previewCount++}`);
}

loadSurface();
connect();
refreshPreview();
