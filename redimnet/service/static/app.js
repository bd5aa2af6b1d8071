// The service's web page: no framework, no build step. Every text from the server or the user is set with
// textContent, never parsed as HTML.
"use strict";

const recorded = { a: null, b: null };  // recordings made in the page (WAV blobs), by slot

function $(id) { return document.getElementById(id); }

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = false;
}

function clearMessages() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("result").replaceChildren();
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The recording in a slot: a file chosen, else one recorded here.
function recording(slot) {
  const input = $("file-" + slot);
  if (input.files && input.files.length) return { blob: input.files[0], name: input.files[0].name };
  if (recorded[slot]) return { blob: recorded[slot], name: "recording-" + slot + ".wav" };
  return null;
}

async function call(method, path, form, needsToken) {
  const headers = {};
  if (needsToken) {
    const token = $("token").value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
  }
  let response;
  try {
    response = await fetch(path, { method: method, body: form, headers: headers });
  } catch (err) {
    throw new Error("the service cannot be reached (" + err.message + ")");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : "HTTP " + response.status;
    throw new Error(message);
  }
  return body;
}

async function busy(button, work) {
  clearMessages();
  button.disabled = true;
  try { await work(); } catch (err) { showError(err.message); } finally { button.disabled = false; }
}

function scoreLine(body) {
  const parts = ["score " + body.score.toFixed(4) + " (" + body.scoring + ")"];
  if (body.llr !== undefined) {
    parts.push("LLR " + body.llr.toFixed(3), "P(same) " + body.posterior.toFixed(4));
  }
  return parts.join(" · ");
}

function showVerify(body, against) {
  const result = $("result");
  result.append(element("h2", null, "Verify: A against " + against));
  if (body.decision !== undefined) {
    const accept = body.decision === "accept";
    result.append(element("p", "verdict " + (accept ? "accept" : "reject"),
      accept ? "Same speaker" : "Different speakers"));
  }
  result.append(element("p", null, scoreLine(body)));
  result.append(bars([{ speaker: against, score: body.score }]));
}

function bars(rows) {
  const list = element("div", "bars");
  for (const row of rows) {
    const line = element("div", "bar");
    line.append(element("span", "name", row.speaker));
    const track = element("div", "track");
    const fill = element("div", "fill");
    fill.style.width = (Math.max(0, Math.min(1, row.score)) * 100).toFixed(1) + "%";
    track.append(fill);
    line.append(track, element("span", "value", row.score.toFixed(4)));
    list.append(line);
  }
  return list;
}

async function verify() {
  const a = recording("a");
  if (!a) throw new Error("choose or record recording A first");
  const form = new FormData();
  form.append("audio", a.blob, a.name);
  const speaker = $("verify-speaker").value;
  if (speaker) {
    form.append("speaker", speaker);
  } else {
    const b = recording("b");
    if (!b) throw new Error("choose or record recording B, or pick an enrolled speaker");
    form.append("audio2", b.blob, b.name);
  }
  showVerify(await call("POST", "/v1/verify", form, false), speaker || "B");
}

async function identify() {
  const a = recording("a");
  if (!a) throw new Error("choose or record recording A first");
  const form = new FormData();
  form.append("audio", a.blob, a.name);
  form.append("top", "5");
  const body = await call("POST", "/v1/identify", form, false);
  const result = $("result");
  result.append(element("h2", null, "Identify: the closest enrolled speakers"));
  if (!body.matches.length) {
    result.append(element("p", null, "Nobody is enrolled yet."));
    return;
  }
  result.append(bars(body.matches));
}

const PALETTE = ["#2f7bd0", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#d4ac0d", "#7f8c8d"];

async function diarize() {
  const a = recording("a");
  if (!a) throw new Error("choose or record recording A first");
  const form = new FormData();
  form.append("audio", a.blob, a.name);
  const body = await call("POST", "/v1/diarize", form, false);
  const result = $("result");
  result.append(element("h2", null, "Diarize: " + body.speakers.length + " speaker(s) in " +
    body.duration.toFixed(1) + " s"));
  if (!body.segments.length) {
    result.append(element("p", null, "No speech found."));
    return;
  }
  const colour = {};
  body.speakers.forEach((speaker, i) => { colour[speaker] = PALETTE[i % PALETTE.length]; });
  const timeline = element("div", "timeline");
  for (const segment of body.segments) {
    const block = element("div", "segment");
    block.style.left = (100 * segment.start / body.duration).toFixed(3) + "%";
    block.style.width = (100 * (segment.end - segment.start) / body.duration).toFixed(3) + "%";
    block.style.background = colour[segment.speaker];
    block.title = segment.speaker + ": " + segment.start.toFixed(2) + "–" + segment.end.toFixed(2) + " s";
    timeline.append(block);
  }
  const legend = element("div", "legend");
  for (const speaker of body.speakers) {
    const item = element("span");
    const swatch = element("span", "swatch");
    swatch.style.background = colour[speaker];
    item.append(swatch, document.createTextNode(speaker));
    legend.append(item);
  }
  result.append(timeline, legend);
}

async function enroll() {
  const a = recording("a");
  if (!a) throw new Error("choose or record recording A first");
  const name = $("enroll-name").value.trim();
  if (!name) throw new Error("type the speaker's name first");
  const form = new FormData();
  form.append("speaker", name);
  form.append("audio", a.blob, a.name);
  const body = await call("POST", "/v1/enroll", form, true);
  $("result").append(element("p", null, "Enrolled " + body.added + " recording(s) for " + body.speaker +
    " (" + body.recordings + " in total)."));
  await Promise.all([loadSpeakers(), loadInfo()]);
}

async function remove(name) {
  await call("DELETE", "/v1/speakers/" + encodeURIComponent(name), null, true);
  $("result").append(element("p", null, "Removed " + name + "."));
  await Promise.all([loadSpeakers(), loadInfo()]);
}

async function loadSpeakers() {
  const body = await call("GET", "/v1/speakers", null, false);
  const list = $("speakers");
  const select = $("verify-speaker");
  list.replaceChildren();
  select.replaceChildren(element("option", null, "Recording B"));
  select.firstChild.value = "";
  for (const row of body.speakers) {
    const item = element("li", null, row.speaker + " — " + row.recordings + " recording(s) ");
    const button = element("button", null, "delete");
    button.type = "button";
    button.addEventListener("click", () => busy(button, () => remove(row.speaker)));
    item.append(button);
    list.append(item);
    const option = element("option", null, row.speaker);
    option.value = row.speaker;
    select.append(option);
  }
  if (!body.speakers.length) list.append(element("li", "muted", "none yet"));
}

async function loadInfo() {
  const body = await call("GET", "/v1/info", null, false);
  $("model").textContent = "model " + body.model.name + " (" + body.model.embedding_dim + "-dim, " +
    body.scoring.name + (body.scoring.calibrated ? ", calibrated" : "") + ") · " +
    body.database.speakers + " speaker(s) enrolled · recordings up to " + body.limits.max_audio_seconds + " s";
}

// --- recording from the microphone: MediaRecorder, then decoded and written as 16-bit WAV (the service reads
// WAV, FLAC, OGG, ...; browsers record WebM or MP4, which it does not) -----------------------------------------
const recorders = {};

function wavBlob(buffer) {
  const channel = buffer.getChannelData(0);
  const data = new DataView(new ArrayBuffer(44 + channel.length * 2));
  const text = (offset, value) => { for (let i = 0; i < value.length; i++) data.setUint8(offset + i, value.charCodeAt(i)); };
  text(0, "RIFF"); data.setUint32(4, 36 + channel.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); data.setUint32(16, 16, true); data.setUint16(20, 1, true); data.setUint16(22, 1, true);
  data.setUint32(24, buffer.sampleRate, true); data.setUint32(28, buffer.sampleRate * 2, true);
  data.setUint16(32, 2, true); data.setUint16(34, 16, true);
  text(36, "data"); data.setUint32(40, channel.length * 2, true);
  for (let i = 0; i < channel.length; i++) {
    const sample = Math.max(-1, Math.min(1, channel[i]));
    data.setInt16(44 + i * 2, sample < 0 ? sample * 0x8000 : sample * 0x7fff, true);
  }
  return new Blob([data], { type: "audio/wav" });
}

async function toggleRecording(button) {
  const slot = button.dataset.slot;
  const active = recorders[slot];
  if (active) {
    active.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    throw new Error("this browser cannot record here (recording needs https or localhost)");
  }
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    delete recorders[slot];
    button.classList.remove("on");
    button.textContent = "Record";
    try {
      const context = new AudioContext();
      const decoded = await context.decodeAudioData(await new Blob(chunks).arrayBuffer());
      recorded[slot] = wavBlob(decoded);
      $("file-" + slot).value = "";
      const player = $("play-" + slot);
      player.src = URL.createObjectURL(recorded[slot]);
      player.hidden = false;
    } catch (err) {
      showError("the recording could not be decoded: " + err.message);
    }
  };
  recorders[slot] = recorder;
  recorder.start();
  button.classList.add("on");
  button.textContent = "Stop";
}

document.addEventListener("DOMContentLoaded", () => {
  $("verify").addEventListener("click", (event) => busy(event.target, verify));
  $("identify").addEventListener("click", (event) => busy(event.target, identify));
  $("enroll").addEventListener("click", (event) => busy(event.target, enroll));
  $("diarize").addEventListener("click", (event) => busy(event.target, diarize));
  for (const button of document.querySelectorAll("button.record")) {
    button.addEventListener("click", () => toggleRecording(button).catch((err) => showError(err.message)));
  }
  for (const slot of ["a", "b"]) {
    $("file-" + slot).addEventListener("change", () => {
      recorded[slot] = null;
      const chosen = recording(slot);
      const player = $("play-" + slot);
      player.hidden = !chosen;
      if (chosen) player.src = URL.createObjectURL(chosen.blob);
    });
  }
  loadInfo().catch((err) => showError(err.message));
  loadSpeakers().catch((err) => showError(err.message));
});
