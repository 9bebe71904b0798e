/**
 * The meeting page: a grid with a tile per participant (camera, name, mic state, reactions) and one per
 * shared screen, the controls, and the chat panel.
 *
 * Every tile and media element carries data-participant-id and data-source, so what is on screen can be
 * matched to the relay's track announcements (the browser tests rely on it).
 */
import { EMOJI } from "../meeting.js";
import { mountBackgroundControl } from "./background-control.js";
import { mountChat } from "./chat-panel.js";
import { mountRecordings } from "./recordings-panel.js";
import { $, describe, h, initials, toast } from "./dom.js";
import { formatMeetingId } from "./home-view.js";

const REACTION_MS = 4000;

export function mountMeeting(meeting, { onExit }) {
  const grid = $("#grid");
  const mic = $("#toggle-mic");
  const camera = $("#toggle-camera");
  const screen = $("#toggle-screen");
  grid.replaceChildren();
  const tiles = new Map(); // `${participant_id}/${source}` -> tile element
  const cleanups = [];
  const on = (type, handler) => cleanups.push(meeting.on(type, handler));

  $("#meeting-title").textContent = meeting.info?.title ?? "Meeting";
  $("#meeting-id").textContent = `ID ${formatMeetingId(meeting.meetingId)}`;
  $("#end").hidden = !meeting.isHost;
  const status = $("#meeting-status");
  const setStatus = (text) => (status.textContent = text);
  // Honest: "Connected" only once media is (ICE and DTLS up), with the path it takes.
  const MEDIA_STATUS = {
    new: "Joined",
    connecting: "Connecting media…",
    disconnected: "Media interrupted…",
    failed: "Media failed: no network path to the relay",
  };
  // A failure with a known reason (e.g. a relay offering only loopback addresses) says it.
  const showMedia = (state, path, reason = null) => {
    status.title = state === "connected" && path ? `media path: ${path}` : "";
    if (state === "failed" && reason) return setStatus(`Media failed: ${reason}`);
    if (state !== "connected") return setStatus(MEDIA_STATUS[state] ?? "Joined");
    setStatus(path?.startsWith("turn/") ? `Connected via TURN (${path.slice(5)})` : "Connected");
  };
  showMedia(meeting.mediaState, meeting.mediaPath, meeting.mediaError);

  // --- tiles ---------------------------------------------------------------------------------------

  function tile(participantId, source, name, { local = false } = {}) {
    const key = `${participantId}/${source}`;
    if (tiles.has(key)) return tiles.get(key);
    const video = h("video", {
      autoplay: true,
      playsInline: true,
      muted: true,
      dataset: { participantId, source },
      hidden: true,
    });
    const el = h(
      "figure",
      { class: `tile ${source}${local ? " local" : ""}`, dataset: { participantId, source } },
      video,
      h("div", { class: "placeholder", "aria-hidden": "true" }, initials(name)),
      h(
        "figcaption",
        {},
        h("span", { class: "name" }, source === "screen" ? `${name} (screen)` : name),
        h("span", { class: "mic-off", title: "Microphone muted", hidden: true }, "🔇"),
      ),
      h("div", { class: "reaction-layer" }),
    );
    tiles.set(key, el);
    grid.append(el);
    return el;
  }

  function removeTile(participantId, source) {
    const key = `${participantId}/${source}`;
    tiles.get(key)?.remove();
    tiles.delete(key);
  }

  function showVideo(el, track) {
    const video = el.querySelector("video");
    if (track) {
      if (video.srcObject?.getVideoTracks()[0] !== track) video.srcObject = new MediaStream([track]);
      video.hidden = false;
      video.play().catch(() => {});
    } else {
      video.hidden = true;
    }
    el.classList.toggle("has-video", Boolean(track));
  }

  function setMicMuted(el, muted) {
    el.querySelector(".mic-off").hidden = !muted;
  }

  function nameOf(participantId) {
    if (participantId === meeting.participantId) return "You";
    return meeting.participants.get(participantId)?.name ?? "Guest";
  }

  // The local tile shows this browser's camera, mirrored.
  function renderLocal() {
    const el = tile(meeting.participantId, "camera", "You", { local: true });
    const camera = meeting.localTracks.get("camera");
    showVideo(el, camera && !meeting.muted.has("camera") && camera.readyState === "live" ? camera : null);
    setMicMuted(el, !meeting.localTracks.has("microphone") || meeting.muted.has("microphone"));
    renderControls();
  }

  function addRemote({ info, track }) {
    const name = nameOf(info.participant_id);
    if (info.kind === "audio") {
      const el = tile(info.participant_id, "camera", name);
      el.querySelector("audio")?.remove();
      const audio = h("audio", {
        autoplay: true,
        dataset: { participantId: info.participant_id, source: info.source },
      });
      audio.srcObject = new MediaStream([track]);
      el.append(audio);
      audio.play().catch(() => {});
      setMicMuted(el, info.muted);
      return;
    }
    const el = tile(info.participant_id, info.source, name);
    el.dataset.trackId = info.track_id;
    showVideo(el, info.muted ? null : track);
  }

  function removeRemote({ info }) {
    if (!info) return;
    const cameraTile = tiles.get(`${info.participant_id}/camera`);
    if (info.source === "screen") removeTile(info.participant_id, "screen");
    else if (info.kind === "audio") cameraTile?.querySelector("audio")?.remove();
    else if (cameraTile) showVideo(cameraTile, null);
  }

  /** A track this browser cannot decode: the placeholder, not a black video, and the tile says why. */
  function markUndecodable({ info, codec }) {
    if (info.kind !== "video") return;
    removeRemote({ info });
    const el = tiles.get(`${info.participant_id}/${info.source === "screen" ? "screen" : "camera"}`);
    if (!el) return;
    el.dataset.undecodable = codec;
    el.title = `Sent in ${codec}, which this browser cannot play`;
  }

  renderLocal();
  for (const participant of meeting.participants.values()) {
    tile(participant.participant_id, "camera", participant.name);
  }
  for (const remote of meeting.remoteTracks.values()) {
    addRemote(remote);
    if (remote.undecodable) markUndecodable({ info: remote.info, codec: remote.undecodable });
  }

  on("participant_joined", ({ participant }) => tile(participant.participant_id, "camera", participant.name));
  on("participant_left", ({ participant_id }) => {
    removeTile(participant_id, "camera");
    removeTile(participant_id, "screen");
  });
  on("track_added", addRemote);
  on("track_removed", removeRemote);
  on("track_undecodable", markUndecodable);
  on("track_muted", ({ track_id, muted }) => {
    const remote = meeting.remoteTracks.get(track_id);
    if (!remote) return;
    const { info, track } = remote;
    const el = tiles.get(`${info.participant_id}/${info.kind === "audio" ? "camera" : info.source}`);
    if (!el) return;
    if (info.kind === "audio") setMicMuted(el, muted);
    else showVideo(el, muted ? null : track);
  });
  on("local_tracks", renderLocal);
  // Who speaks: a ring on each speaker's tile, a stronger one on the dominant speaker's.
  const showSpeakers = ({ speakers, dominant }) => {
    for (const el of tiles.values()) {
      if (el.dataset.source !== "camera") continue;
      el.classList.toggle("speaking", speakers.has(el.dataset.participantId));
      el.classList.toggle("dominant", el.dataset.participantId === dominant);
    }
  };
  showSpeakers({ speakers: meeting.speakers, dominant: meeting.dominantSpeaker });
  on("speakers_changed", showSpeakers);

  // --- reactions -----------------------------------------------------------------------------------

  const reactionBar = $("#reactions");
  reactionBar.replaceChildren(
    ...EMOJI.map((emoji) =>
      h(
        "button",
        {
          type: "button",
          class: "emoji",
          title: `React ${emoji}`,
          dataset: { emoji },
          onclick: () => meeting.react(emoji).catch((error) => toast(describe(error), "error")),
        },
        emoji,
      ),
    ),
  );
  on("reaction", ({ participant_id, name, emoji }) => {
    const el = tiles.get(`${participant_id}/camera`);
    if (!el) return; // someone who has just left
    const bubble = h(
      "div",
      { class: "reaction", dataset: { emoji, participantId: participant_id } },
      emoji,
      h("small", {}, participant_id === meeting.participantId ? "You" : name),
    );
    el.querySelector(".reaction-layer").append(bubble);
    setTimeout(() => bubble.remove(), REACTION_MS);
  });

  // --- controls ------------------------------------------------------------------------------------

  function cameraIsOff() {
    return !meeting.localTracks.has("camera") || meeting.muted.has("camera");
  }

  function sharing() {
    return meeting.localTracks.has("screen");
  }

  function renderControls() {
    const micMuted = meeting.muted.has("microphone");
    mic.disabled = !meeting.localTracks.has("microphone");
    mic.textContent = micMuted ? "Unmute" : "Mute";
    mic.setAttribute("aria-pressed", String(micMuted));
    camera.textContent = cameraIsOff() ? "Start video" : "Stop video";
    camera.setAttribute("aria-pressed", String(cameraIsOff()));
    screen.textContent = sharing() ? "Stop sharing" : "Share screen";
    screen.setAttribute("aria-pressed", String(sharing()));
  }

  const guarded = (action) => async () => {
    try {
      await action();
    } catch (error) {
      toast(describe(error), "error");
    }
    renderControls();
  };
  function toggleChat() {
    const chat = $("#chat");
    chat.hidden = !chat.hidden;
    $("#toggle-chat").setAttribute("aria-pressed", String(!chat.hidden));
  }

  async function endForAll() {
    if (confirm("End the meeting for everyone?")) await meeting.end();
  }

  const handlers = [
    [mic, guarded(() => meeting.setMicrophoneMuted(!meeting.muted.has("microphone")))],
    [camera, guarded(() => meeting.setCameraOn(cameraIsOff()))],
    [screen, guarded(() => (sharing() ? meeting.stopScreenShare() : meeting.startScreenShare()))],
    [$("#toggle-chat"), toggleChat],
    [$("#leave"), guarded(() => meeting.leave())],
    [$("#end"), guarded(endForAll)],
  ];
  for (const [button, handler] of handlers) button.addEventListener("click", handler);
  renderControls();

  // --- connection state and the end ----------------------------------------------------------------

  on("reconnecting", () => setStatus("Reconnecting…"));
  on("reconnected", () => showMedia(meeting.mediaState, meeting.mediaPath, meeting.mediaError));
  on("media_state", ({ state, path, reason }) => showMedia(state, path, reason));
  for (const message of meeting.notices) toast(message); // from joining, before this page existed
  on("notice", ({ message }) => toast(message));
  on("ended", ({ reason }) => {
    const messages = {
      left: "You left the meeting",
      host_ended: meeting.isHost ? "You ended the meeting for everyone" : "The host ended the meeting",
      ended: "The meeting has ended",
      removed_by_host: "A host removed you from the meeting",
    };
    toast(messages[reason] ?? `The meeting ended (${reason})`);
    unmount();
    onExit();
  });

  const unmountChat = mountChat(meeting);
  const unmountBackground = mountBackgroundControl(meeting);
  const unmountRecordings = mountRecordings(meeting);
  const onPageHide = () => meeting.connection?.close({ leave: true });
  window.addEventListener("pagehide", onPageHide);

  function unmount() {
    for (const cleanup of cleanups) cleanup();
    for (const [button, handler] of handlers) button.removeEventListener("click", handler);
    unmountChat();
    unmountBackground();
    unmountRecordings();
    window.removeEventListener("pagehide", onPageHide);
    for (const media of grid.querySelectorAll("video, audio")) media.srcObject = null;
    grid.replaceChildren();
  }
}
