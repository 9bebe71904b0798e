/**
 * A joined meeting: local media, the relay connection (nearest relay, reconnection), chat and reactions.
 *
 * `await Meeting.join(api, meetingId, passcode, options)` asks the API for a join token and the relays,
 * probes them, connects to the fastest and publishes the camera and microphone. What happens arrives as
 * events (`meeting.on(type, fn)`):
 *   participant_joined {participant}, participant_left {participant_id, reason},
 *   track_added {info, track}, track_removed {track_id}, track_muted {track_id, muted},
 *   track_undecodable {info, codec} (sent in a codec this browser cannot decode: it never plays),
 *   chat {message_id, sender_name, text, created_at, own, participant_id?},
 *   reaction {participant_id, name, emoji}, local_tracks {}, reconnecting {}, reconnected {},
 *   hands_changed {hands} (ids in raise order), role_changed {participant_id, role},
 *   muted_by_host {source, muted, can_unmute} (a host muted us),
 *   notice {message}, ended {reason} (removed_by_host: a host removed us).
 *
 * Chat and reactions go to the API first (stored once, idempotency key, retried from an outbox), then
 * live through the relay; receivers drop duplicates by message id. The same flow as the Python SDK
 * (client_sdk/meeting.py).
 */
import { ApiError, normalizeMeetingId } from "./api.js";
import { CameraEffect, storedBackground } from "./background.js";
import { Emitter } from "./emitter.js";
import { Outbox } from "./outbox.js";
import { RelayConnection, RelayError } from "./relay.js";
import { rankRelays } from "./relay-select.js";

export const CAMERA_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } };
export const SCREEN_CONSTRAINTS = { frameRate: { ideal: 15, max: 30 } };
/** The reactions the API accepts (meetup_protocol/schemas/chat.py: ALLOWED_EMOJI). */
export const EMOJI = ["👍", "👎", "👏", "🎉", "😂", "😮", "❤️", "🙌", "🤔", "✋"];

export class MeetingEnded extends Error {}

export class Meeting extends Emitter {
  constructor(api, meetingId, { videoCodec = "video/VP8", region = null } = {}) {
    super();
    this.api = api;
    this.meetingId = normalizeMeetingId(meetingId);
    this.videoCodec = videoCodec;
    this.region = region;
    this.info = null; // the API's MeetingOut
    this.role = "guest";
    /** Raised hands: participant id -> raised_at (the relay's clock), shown in raise order. */
    this.hands = new Map();
    this.participantId = "";
    this.connection = null;
    this.relayUrl = "";
    this.localTracks = new Map(); // source -> MediaStreamTrack
    this.muted = new Set(); // sources not sent right now (mic muted, camera off)
    this.participants = new Map(); // participant_id -> {participant_id, name, role}
    this.remoteTracks = new Map(); // track_id -> {info, track}
    this.speakers = new Map(); // participant_id -> level 0..1 of who speaks now, loudest first
    this.dominantSpeaker = null; // who holds the stage (kept through pauses)
    this.chat = new Map(); // message_id -> message, deduplicated
    this.unacked = new Map(); // message_id -> our chat announcement the relay has not acknowledged
    this.notices = []; // what the user should know from joining (e.g. no camera)
    this.ended = false;
    this.endReason = "";
    this._leaving = false;
    // Background blur/replace on the camera (background.js): the published camera is its output.
    this.effect = new CameraEffect({ onFallback: (raw, reason) => this._cameraFallback(raw, reason) });
    this.outbox = new Outbox(
      (kind, body, key) =>
        kind === "chat" ? api.sendChat(this.meetingId, body, key) : api.react(this.meetingId, body, key),
      (item, stored) => this._announce(item, stored),
    );
  }

  /**
   * Join with the camera and microphone (whatever of them the browser grants) and publish them.
   * Options: videoCodec ("video/VP8" | "video/H264"), camera, microphone (booleans), region (hint).
   */
  static async join(api, meetingId, passcode, options = {}) {
    const meeting = new Meeting(api, meetingId, options);
    await meeting._openDevices(options.camera ?? true, options.microphone ?? true);
    const background = options.background ?? (await storedBackground(api));
    await meeting.setBackground(background.mode, background.image).catch(() => {}); // noticed: joins anyway
    try {
      await meeting._connect(passcode);
    } catch (error) {
      meeting._stopLocalTracks();
      throw error;
    }
    await meeting._loadHistory();
    return meeting;
  }

  /** The media connection to the relay: "new" until there is media to connect, then as relay.js says. */
  get mediaState() {
    return this.connection?.mediaState ?? "new";
  }

  /** "direct" or "turn/udp|tcp|tls" while connected. */
  /** Why media failed, when known (relay.js failureReason), else null. */
  get mediaError() {
    return this.connection?.mediaError ?? null;
  }

  get mediaPath() {
    return this.connection?.mediaPath ?? null;
  }

  get isHost() {
    return this.role === "host";
  }

  get selfName() {
    return this.api.user?.display_name ?? "You";
  }

  // --- local media ---------------------------------------------------------------------------------

  async _openDevices(camera, microphone) {
    if (!camera && !microphone) return;
    const attempts = [
      { video: camera && CAMERA_CONSTRAINTS, audio: microphone },
      { video: false, audio: microphone },
      { video: camera && CAMERA_CONSTRAINTS, audio: false },
    ].filter((c) => c.video || c.audio);
    for (const constraints of attempts) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        for (const track of stream.getTracks()) {
          this.localTracks.set(track.kind === "video" ? "camera" : "microphone", track);
        }
        if (camera && !this.localTracks.has("camera")) this._notice("Your camera is not available.");
        if (microphone && !this.localTracks.has("microphone")) {
          this._notice("Your microphone is not available.");
        }
        return;
      } catch (error) {
        console.warn("getUserMedia refused", constraints, error);
      }
    }
    this._notice("No camera or microphone available: you join to watch and listen.");
  }

  /** Participant ids with a raised hand, first raised first. */
  raisedHands() {
    return [...this.hands.entries()].sort((a, b) => a[1] - b[1]).map(([id]) => id);
  }

  /** Raise or lower one's own hand; a host or co-host may lower another's (`participantId`). */
  setHand(raised, participantId = null) {
    this.connection?.setHand(raised, participantId);
  }

  _notice(message) {
    this.notices.push(message);
    this.emit("notice", { message });
  }

  _stopLocalTracks() {
    for (const track of this.localTracks.values()) track.stop();
    this.effect.stop();
  }

  /**
   * Background "none" | "blur" | "image" (image: a File/Blob or a URL), now and for the camera from now
   * on. An effect that cannot run leaves the raw camera published and says why (a notice, and the
   * BackgroundError for the caller); the setting is kept only if it works.
   */
  async setBackground(mode, image = null) {
    try {
      await this.effect.configure(mode, image); // a bad image changes nothing
    } catch (error) {
      this._notice(`Background not changed: ${error.message}.`);
      throw error;
    }
    const raw = this.effect.raw ?? this.localTracks.get("camera");
    try {
      await this._publishCamera(await this.effect.apply(raw));
    } catch (error) {
      await this.effect.configure("none");
      await this._publishCamera(raw);
      this._notice(`Background effect unavailable: ${error.message}. Your camera is sent as it is.`);
      throw error;
    } finally {
      this.emit("local_tracks", {});
    }
  }

  /** Make `track` the camera that is shown and published (replaceTrack mid-meeting). */
  async _publishCamera(track) {
    if (!track || this.localTracks.get("camera") === track) return;
    this.localTracks.set("camera", track);
    if (this.connection?.localTracks.has("camera")) await this.connection.replaceTrack("camera", track);
  }

  async _cameraFallback(raw, reason) {
    await this.effect.configure("none");
    await this._publishCamera(raw);
    this._notice(`${reason}. Your camera is sent as it is.`);
    this.emit("local_tracks", {});
  }

  /** Mute or unmute the microphone: while muted nothing is sent, and the others see it. */
  async setMicrophoneMuted(muted) {
    const track = this.localTracks.get("microphone");
    if (!track) return;
    track.enabled = !muted;
    this._setMuted("microphone", muted);
    await this.connection?.setMuted("microphone", muted);
    this.emit("local_tracks", {});
  }

  /** Camera off releases the device (its light goes out); on opens it again. */
  async setCameraOn(on) {
    if (on) {
      const stream = await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS });
      const track = await this.effect.apply(stream.getVideoTracks()[0]).catch((error) => {
        this._notice(`Background effect unavailable: ${error.message}. Your camera is sent as it is.`);
        return this.effect.raw;
      });
      this.localTracks.set("camera", track);
      this._setMuted("camera", false);
      if (this.connection?.localTracks.has("camera")) {
        await this.connection.replaceTrack("camera", track);
        await this.connection.setMuted("camera", false);
      } else {
        this.connection?.publish("camera", track); // joined without a camera: publish it now
      }
    } else {
      this._setMuted("camera", true);
      await this.connection?.setMuted("camera", true);
      this.localTracks.get("camera")?.stop();
      this.effect.stop(); // the raw camera too: its light goes out
    }
    this.emit("local_tracks", {});
  }

  async startScreenShare() {
    if (this.localTracks.has("screen")) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: SCREEN_CONSTRAINTS, audio: false });
    const track = stream.getVideoTracks()[0];
    track.contentHint = "detail";
    track.addEventListener("ended", () => this.stopScreenShare()); // the browser's own "Stop sharing"
    this.localTracks.set("screen", track);
    this.connection?.publish("screen", track);
    this.emit("local_tracks", {});
  }

  stopScreenShare() {
    const track = this.localTracks.get("screen");
    if (!track) return;
    this.localTracks.delete("screen");
    this.connection?.unpublish("screen");
    track.stop();
    this.emit("local_tracks", {});
  }

  _setMuted(source, muted) {
    if (muted) this.muted.add(source);
    else this.muted.delete(source);
  }

  // --- the relay connection ------------------------------------------------------------------------

  async _connect(passcode = null, avoid = null) {
    const admission = await this.api.joinMeeting(this.meetingId, passcode, this.region);
    this.info = admission.meeting;
    this.role = admission.role;
    this.participantId = admission.participant_id;
    const ranked = await rankRelays(admission.relays);
    const urls = [...ranked.filter((r) => r.url !== avoid), ...ranked.filter((r) => r.url === avoid)].map(
      (r) => r.url,
    );
    const failures = [];
    for (const url of urls) {
      const connection = new RelayConnection(url, admission.join_token, {
        tracks: this._publishable(),
        muted: this.muted,
        videoCodec: this.videoCodec,
        // TURN servers with this join's short-lived credentials (none where the API has no TURN):
        // the browser gathers relay candidates over UDP, TCP and TLS, and ICE prefers direct pairs.
        iceServers: admission.ice_servers || [],
      });
      try {
        await connection.connect();
      } catch (error) {
        if (error.code === "meeting_ended") throw new MeetingEnded("the meeting has ended");
        if (error.code === "meeting_full") throw new RelayError(error.code, "the meeting is full");
        failures.push(`${url}: ${error.message}`);
        continue;
      }
      this._attach(connection, url);
      // A new relay session starts unmuted for the others: tell them what is muted here.
      for (const source of this.muted) {
        if (connection.localTracks.has(source)) await connection.setMuted(source, true);
      }
      return;
    }
    const why = failures.join("; ") || "none offered";
    throw new RelayError("no_relay_reachable", `no relay could be reached (${why})`);
  }

  /** Live local tracks (a camera turned off is still published, muted: its m-line stays). */
  _publishable() {
    const tracks = new Map();
    for (const [source, track] of this.localTracks) {
      if (track.readyState === "live" || this.muted.has(source)) tracks.set(source, track);
    }
    return tracks;
  }

  _attach(connection, url) {
    this.connection = connection;
    this.relayUrl = url;
    this.participants = new Map(
      [...connection.participants.values()].map((p) => [p.participant_id, participantInfo(p)]),
    );
    this.hands = new Map();
    for (const participant of this.participants.values()) {
      if (participant.hand_raised_at != null) this.hands.set(participant.participant_id, participant.hand_raised_at);
      this.emit("participant_joined", { participant });
    }
    connection.on("track", ({ info, track }) => {
      this.remoteTracks.set(info.track_id, { info, track });
      this.emit("track_added", { info, track });
    });
    connection.on("track_undecodable", ({ info, codec }) => {
      const remote = this.remoteTracks.get(info.track_id);
      if (remote) remote.undecodable = codec; // for a page that shows the meeting later
      const name = this.participants.get(info.participant_id)?.name ?? "Someone";
      this._notice(`${name}'s ${info.source} is sent in ${codec}, which this browser cannot play.`);
      this.emit("track_undecodable", { info, codec });
    });
    connection.on("participant_joined", ({ participant }) => {
      const info = participantInfo(participant);
      this.participants.set(info.participant_id, info);
      this.emit("participant_joined", { participant: info });
    });
    connection.on("participant_left", (msg) => {
      this.participants.delete(msg.participant_id);
      this.hands.delete(msg.participant_id);
      this._dropTracks((info) => info.participant_id === msg.participant_id);
      this.emit("participant_left", msg);
    });
    connection.on("track_unpublished", ({ track_id }) =>
      this._dropTracks((info) => info.track_id === track_id),
    );
    connection.on("track_muted", (msg) => {
      const remote = this.remoteTracks.get(msg.track_id);
      if (remote) remote.info = { ...remote.info, muted: msg.muted };
      this.emit("track_muted", msg);
    });
    connection.on("chat", (msg) =>
      this._addChat({
        message_id: msg.message_id,
        participant_id: msg.participant_id,
        sender_name: msg.name,
        text: msg.text,
        created_at: msg.created_at ?? new Date().toISOString(),
        own: false,
      }),
    );
    connection.on("reaction", (msg) => this.emit("reaction", msg));
    connection.on("speakers_changed", ({ speakers, dominant }) => {
      this.speakers = new Map(speakers.map((s) => [s.participant_id, s.level]));
      this.dominantSpeaker = dominant ?? null;
      this.emit("speakers_changed", { speakers: this.speakers, dominant: this.dominantSpeaker });
    });
    connection.on("role_changed", ({ participant_id, role }) => {
      const info = this.participants.get(participant_id);
      if (info) info.role = role;
      if (participant_id === this.participantId) {
        this.role = role;
        this._notice(`You are now ${role === "co_host" ? "a co-host" : `the ${role}`}.`);
      }
      this.emit("role_changed", { participant_id, role });
    });
    connection.on("hand_changed", ({ participant_id, raised, raised_at }) => {
      const info = this.participants.get(participant_id);
      if (info) info.hand_raised_at = raised ? raised_at : null;
      if (raised) this.hands.set(participant_id, raised_at);
      else this.hands.delete(participant_id);
      this.emit("hands_changed", { hands: this.raisedHands() });
    });
    connection.on("muted_by_host", ({ source, muted, can_unmute }) => {
      // The relay forwards nothing of it meanwhile; stop sending too, and say whether we may unmute.
      if (muted && source === "microphone") this.setMicrophoneMuted(true);
      else if (muted && source === "camera") this.setCameraOn(false);
      const may = can_unmute ? "you can unmute yourself" : "a host must allow you to unmute";
      this._notice(muted ? `A host muted your ${source}: ${may}.` : `A host lets you unmute your ${source}.`);
      this.emit("muted_by_host", { source, muted, can_unmute });
    });
    connection.on("chat_ack", ({ message_id }) => this.unacked.delete(message_id));
    connection.on("error", (msg) => console.warn("relay error", msg));
    connection.on("meeting_ended", (msg) => this._finish(msg.reason ?? "ended"));
    // Left through the API elsewhere, or removed by a host: stay out either way.
    connection.on("removed", ({ reason }) => this._finish(reason === "removed_by_host" ? reason : "left"));
    connection.on("media_state", ({ state, path, reason }) => {
      if (this.connection === connection) this.emit("media_state", { state, path, reason });
    });
    connection.on("closed", ({ reason }) => {
      if (this.connection !== connection || this._leaving || this.ended) return;
      if (reason === "meeting_ended" || reason === "host_ended") this._finish(reason);
      else this._reconnect(url);
    });
  }

  _dropTracks(predicate) {
    for (const [trackId, remote] of this.remoteTracks) {
      if (predicate(remote.info)) {
        this.remoteTracks.delete(trackId);
        this.emit("track_removed", { track_id: trackId, info: remote.info });
      }
    }
  }

  /** The relay went away (died, drained, network): join again, elsewhere first, and publish again. */
  async _reconnect(previousUrl) {
    this.emit("reconnecting", { relay: previousUrl });
    this._dropTracks(() => true);
    for (const participant of this.participants.values()) {
      this.emit("participant_left", { participant_id: participant.participant_id, reason: "reconnecting" });
    }
    this.participants.clear();
    let delayMs = 200;
    while (!this._leaving && !this.ended) {
      try {
        await this._connect(null, previousUrl);
        this.emit("reconnected", { relay: this.relayUrl });
        // Our stored messages the relay never acknowledged: again (their notices stay valid minutes).
        for (const body of this.unacked.values()) this.connection?.send(body);
        await this._loadHistory();
        return;
      } catch (error) {
        if (error instanceof MeetingEnded || (error instanceof ApiError && error.status === 410)) {
          this._finish("ended");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(5000, delayMs * 2);
      }
    }
  }

  // --- chat and reactions --------------------------------------------------------------------------

  /** Store the message (exactly once, retried while offline), then send it live. */
  sendChat(text) {
    return this.outbox.put("chat", text);
  }

  react(emoji) {
    return this.outbox.put("reaction", emoji);
  }

  _announce(item, stored) {
    if (item.kind === "chat") {
      this._addChat({ ...stored, own: true });
      // The relay fans out only the API's signed notice of what it stored, never text of our own; it
      // acknowledges it (chat_ack), and until then a reconnect announces it again.
      const body = { type: "chat", notice: stored.relay_notice };
      this.unacked.set(stored.message_id, body);
      this.connection?.send(body);
    } else if (this.connection?.open) {
      this.connection.send({ type: "reaction", notice: stored.relay_notice }); // the relay echoes it to us too
    } else {
      this.emit("reaction", { participant_id: this.participantId, name: this.selfName, emoji: stored.emoji });
    }
  }

  _addChat(message) {
    if (this.chat.has(message.message_id)) return;
    this.chat.set(message.message_id, message);
    this.emit("chat", message);
  }

  /** The stored history (on join, and after a reconnect: what was said meanwhile). */
  async _loadHistory() {
    try {
      const own = this.api.user?.user_id;
      for (const message of await this.api.chatHistory(this.meetingId)) {
        this._addChat({ ...message, own: message.sender_id === own });
      }
    } catch (error) {
      console.warn("chat history unavailable", error);
    }
  }

  // --- leaving -------------------------------------------------------------------------------------

  /** Leave (the others stay): the relay first, then the API frees the seat. */
  async leave() {
    if (this.ended) return;
    this._leaving = true;
    await this.outbox.flush(5000);
    this.connection?.close({ leave: true });
    await this.api.leaveMeeting(this.meetingId).catch(() => {});
    this._finish("left");
  }

  /** End the meeting for everyone (host only). */
  async end() {
    await this.api.endMeeting(this.meetingId);
    this._leaving = true;
    this.connection?.send({ type: "end" });
    this.connection?.close({ leave: false });
    this._finish("host_ended");
  }

  _finish(reason) {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    this.outbox.close();
    this.connection?.close({ leave: false });
    this._stopLocalTracks();
    this.emit("ended", { reason });
  }
}

function participantInfo(participant) {
  return {
    participant_id: participant.participant_id,
    name: participant.name,
    role: participant.role,
    hand_raised_at: participant.hand_raised_at ?? null,
  };
}
