// The conversation page (conversation_url): joins the call with one WHIP POST of an SDP offer,
// shows the replica's video and plays its voice, sends the microphone when there is one, and
// carries Tavus's Interactions Protocol on the "app-message" data channel. Embedded in an
// <iframe>, it relays envelopes both ways with window.postMessage: every inbound envelope is
// posted to the host page, and an envelope the host posts here is sent on the channel, as
// Daily's sendAppMessage would. The host is trusted as far as the call goes: it embeds it.

const root = document.getElementById("call");
const stateLine = document.getElementById("state");
const video = document.getElementById("replica");
const captionBox = document.getElementById("captions");
const joinButton = document.getElementById("join");
const muteButton = document.getElementById("mute");
const leaveButton = document.getElementById("leave");

const conversationId = root.dataset.conversation;
const token = new URLSearchParams(location.search).get("t");
const showCaptions = root.dataset.captions === "true";
const embedded = window.parent !== window;
const CHANNEL = "app-message";
const MAX_CAPTION_LINES = 3;
const ICE_GATHERING_MS = 3000;

let call = null; // {pc, channel, mic, location, closing} while joined or joining
const waiting = []; // envelopes from the host before the channel opens

// -- states ----------------------------------------------------------------------------------
function show(state, message) {
  stateLine.dataset.state = state;
  stateLine.textContent = message;
  const inCall = state === "connecting" || state === "joined";
  joinButton.hidden = inCall || !["active", "left", "disconnected"].includes(state);
  joinButton.textContent = state === "active" ? "Join" : "Join again";
  leaveButton.hidden = !inCall;
  muteButton.hidden = !(inCall && call && call.mic);
}

// What the WHIP endpoint's refusal means for this page.
function refused(status, message) {
  if (status === 401) return ["token-required", "This conversation needs its meeting token: open the link with ?t=TOKEN."];
  if (status === 404) return ["not-found", "No such conversation."];
  if (/ended/i.test(message)) return ["ended", "This conversation has ended."];
  return ["error", message || `Could not join (HTTP ${status}).`];
}

// -- joining ---------------------------------------------------------------------------------
async function microphone() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    return null; // no mic, or refused: watch and listen, and drive it from the host
  }
}

// One round trip, no trickle: wait until the offer carries its candidates.
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHERING_MS);
  });
}

async function join() {
  show("connecting", "Connecting…");
  const mic = await microphone();
  const pc = new RTCPeerConnection();
  call = { pc, channel: null, mic, location: null, closing: false };
  // Browsers offer a microphone only to secure contexts (https, or localhost).
  const why = window.isSecureContext ? "no microphone" : "no microphone without https";
  show("connecting", mic ? "Connecting…" : `Connecting… (${why}: you can watch and listen)`);
  if (mic) pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendrecv" });
  else pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addTransceiver("video", { direction: "recvonly" });

  const stream = new MediaStream();
  pc.addEventListener("track", (event) => {
    stream.addTrack(event.track);
    video.srcObject = stream;
    video.play().catch(() => {}); // started by the Join click, so autoplay rules allow sound
  });
  const channel = pc.createDataChannel(CHANNEL);
  call.channel = channel;
  channel.addEventListener("open", () => {
    while (waiting.length) channel.send(waiting.shift());
  });
  channel.addEventListener("message", (event) => inbound(event.data));
  channel.addEventListener("close", () => dropped(pc));
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") show("joined", mic ? "Connected." : "Connected (no microphone).");
    else if (pc.connectionState === "failed" || pc.connectionState === "closed") dropped(pc);
  });

  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const whip = new URL(`../v2/conversations/${conversationId}/whip`, location.href);
    if (token) whip.searchParams.set("t", token);
    const answer = await fetch(whip, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (answer.status !== 201) {
      const body = await answer.json().catch(() => ({}));
      hangUp();
      show(...refused(answer.status, body.message));
      return;
    }
    call.location = new URL(answer.headers.get("Location"), whip).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
  } catch (error) {
    hangUp();
    show("error", `Could not join: ${error.message || error}`);
  }
}

function hangUp() {
  if (!call) return;
  call.closing = true;
  if (call.mic) call.mic.getTracks().forEach((track) => track.stop());
  call.pc.close();
  video.srcObject = null;
  call = null;
}

// Leave by deleting the WHIP resource first (the server lets go of this participant), then
// close the connection.
async function leave() {
  if (!call) return;
  call.closing = true;
  if (call.location) await fetch(call.location, { method: "DELETE" }).catch(() => {});
  hangUp();
  show("left", "You left the conversation.");
}

// The call dropped without us leaving: ended server-side (/end, a time limit) or the network.
// The page itself says which: it renders the conversation's state.
async function dropped(pc) {
  if (!call || call.pc !== pc || call.closing) return;
  hangUp();
  show("connecting", "Reconnecting…");
  try {
    const page = await fetch(location.href, { cache: "no-store" });
    const state = /data-state="([a-z-]+)"/.exec(await page.text());
    if (state && state[1] === "ended") {
      show("ended", "This conversation has ended.");
      return;
    }
  } catch {
    // the server is unreachable: say so below
  }
  show("disconnected", "The connection was lost.");
}

// -- the Interactions Protocol ---------------------------------------------------------------
function inbound(text) {
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    return;
  }
  if (embedded) window.parent.postMessage(envelope, "*");
  if (showCaptions) caption(envelope);
}

// A message from the host page: an envelope (object or JSON text) for the data channel.
window.addEventListener("message", (event) => {
  if (!embedded || event.source !== window.parent) return;
  const data = event.data;
  if (!data || (typeof data !== "string" && typeof data !== "object")) return;
  const text = typeof data === "string" ? data : JSON.stringify(data);
  if (call && call.channel && call.channel.readyState === "open") call.channel.send(text);
  else if (call) waiting.push(text);
});

// -- captions --------------------------------------------------------------------------------
// conversation.utterance starts a line (the replica's as it starts speaking, the user's once
// they finish); utterance.streaming grows the replica's line sentence by sentence.
const lines = new Map(); // inference_id -> <p>

function caption(envelope) {
  const type = envelope.event_type;
  const props = envelope.properties || {};
  if (type === "conversation.replica.stopped_speaking" && props.interrupted) {
    const line = lines.get(props.inference_id);
    if (line) line.classList.add("cut");
    return;
  }
  if (type !== "conversation.utterance" && type !== "conversation.utterance.streaming") return;
  if (typeof props.speech !== "string" || !props.speech) return;
  const key = props.inference_id || envelope.inference_id || `line${envelope.seq}`;
  let line = lines.get(key);
  if (!line) {
    line = document.createElement("p");
    line.dataset.role = props.role || "replica";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = props.role === "user" ? "You" : "Replica";
    line.append(who, document.createElement("span"));
    lines.set(key, line);
    captionBox.append(line);
    while (captionBox.children.length > MAX_CAPTION_LINES) {
      const old = captionBox.firstElementChild;
      for (const [k, v] of lines) if (v === old) lines.delete(k);
      old.remove();
    }
  }
  line.lastElementChild.textContent = props.speech;
}

// -- controls --------------------------------------------------------------------------------
joinButton.addEventListener("click", join);
leaveButton.addEventListener("click", leave);
muteButton.addEventListener("click", () => {
  if (!call || !call.mic) return;
  const track = call.mic.getAudioTracks()[0];
  track.enabled = !track.enabled;
  muteButton.setAttribute("aria-pressed", String(!track.enabled));
  muteButton.textContent = track.enabled ? "Mute" : "Unmute";
});
window.addEventListener("pagehide", () => {
  // leaving the page leaves the call (keepalive: the request outlives the page)
  if (call && call.location) fetch(call.location, { method: "DELETE", keepalive: true });
});
show("active", "Press Join to start the conversation.");
