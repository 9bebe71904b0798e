/**
 * A participant's connection to a relay: the signalling WebSocket and one max-bundle RTCPeerConnection.
 *
 * The protocol is edge_relay/signalling/protocol.py (the Python SDK's client_sdk/rtc/connection.py is
 * the reference client). The relay makes every offer, so there is never glare: the join (or a later
 * `publish`) asks for m-lines, and the relay's offer marks the ones where this side sends
 * (`tracks[mid] = {publish: source}`: attach the local track, direction sendonly) and announces every
 * other m-line as a remote track ({track_id, participant_id, source, kind, muted}). Answers carry all of
 * this side's ICE candidates (the protocol has no trickle), so each answer waits for gathering.
 *
 * Events: track {info, track}, track_undecodable {info, codec}, media_state {state, path, reason},
 * participant_joined, participant_left, track_published,
 * track_unpublished, track_muted, chat, reaction, meeting_ended, migrate, error, closed {reason}.
 */
import { Emitter } from "./emitter.js";

export const PROTOCOL_VERSION = 1;
/** What the relay accepts from a publisher (it offers only the one asked for on that m-line). */
export const VIDEO_CODECS = ["video/VP8", "video/H264"];
const GATHER_TIMEOUT_MS = 2000;
/** Send the camera as simulcast layers (VP8) when the relay offers it: Chromium does, as answerer. */
const SIMULCAST = /Chrome\//.test(navigator.userAgent);

const LOOPBACK = /^(127\.|::1$|0:0:0:0:0:0:0:1$)/;

/** The addresses of an SDP's ICE candidates (`a=candidate:foundation component proto prio ADDRESS ...`). */
function candidateAddresses(sdp) {
  return [...(sdp ?? "").matchAll(/^a=candidate:\S+ \d+ \S+ \d+ (\S+) /gm)].map((m) => m[1]);
}

/**
 * Why ICE failed, where the descriptions show it; null otherwise. A relay that offers only loopback
 * addresses (the local stack's default, 127.0.0.1) is unreachable from a browser that gathers none:
 * Firefox never pairs a loopback candidate, Chromium only with a flag.
 */
export function failureReason(pc) {
  const remote = candidateAddresses(pc.remoteDescription?.sdp);
  const local = candidateAddresses(pc.localDescription?.sdp);
  if (remote.length && remote.every((a) => LOOPBACK.test(a)) && !local.some((a) => LOOPBACK.test(a))) {
    return "the relay offers only loopback addresses, which this browser does not use";
  }
  return null;
}

/** The first codec name (e.g. "H264") the SDP offers on the m-line `mid`, or null. */
export function offeredCodec(sdp, mid) {
  const section = (sdp ?? "").split(/\r?\nm=/).find((m) => new RegExp(`^a=mid:${mid}\\s*$`, "m").test(m));
  return section?.match(/^a=rtpmap:\d+ ([^/\s]+)/m)?.[1] ?? null;
}

export class RelayError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "RelayError";
    this.code = code;
  }
}

export class RelayConnection extends Emitter {
  /**
   * @param tracks Map source -> MediaStreamTrack to publish from the start (camera, microphone, screen)
   * @param muted Set of sources that start muted (their m-line is negotiated, nothing is sent)
   * @param iceServers RTCIceServer dicts: the TURN servers of the join (the API's ice_servers)
   */
  constructor(
    url,
    token,
    { tracks = new Map(), muted = new Set(), videoCodec = "video/VP8", iceServers = [] } = {},
  ) {
    super();
    this.url = url;
    this.token = token;
    this.localTracks = new Map(tracks);
    this.muted = new Set(muted);
    this.videoCodec = videoCodec;
    this.participantId = "";
    this.participants = new Map(); // participant_id -> {participant_id, name, role, tracks}
    this.remoteTracks = new Map(); // mid -> {info, track}
    this.publishing = new Map(); // source -> the RTCRtpTransceiver sending it
    this.closeReason = "";
    this.closed = false;
    // iceServers: the join's TURN servers ({urls, username, credential}, as the API hands them out).
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    this._ws = null;
    this._negotiating = Promise.resolve(); // offers are answered one at a time, in order
    // What the media is doing, as the page shows it: never "connected" unless ICE and DTLS are.
    this.mediaState = "new"; // RTCPeerConnection.connectionState: new, connecting, connected, disconnected, failed
    this.mediaPath = null; // once connected: "direct", or "turn/udp" | "turn/tcp" | "turn/tls"
    this.mediaError = null; // once failed: why, where the SDP tells (e.g. a relay offering only loopback)
    this.pc.addEventListener("connectionstatechange", () => this._onMediaState());
  }

  async _onMediaState() {
    const state = this.pc.connectionState;
    if (state === "connected") this.mediaPath = await this._selectedPath();
    if (this.closed || state !== this.pc.connectionState) return; // closed, or changed while we looked
    this.mediaState = state;
    this.mediaError = state === "failed" ? failureReason(this.pc) : null;
    this.emit("media_state", { state, path: this.mediaPath, reason: this.mediaError });
  }

  /** How the media goes, from the selected candidate pair: direct, or through a TURN server (and over
   * which transport to it: the local relay candidate's relayProtocol). Null when the stats do not say. */
  async _selectedPath() {
    try {
      const stats = await this.pc.getStats();
      let pair = null;
      stats.forEach((report) => {
        if (report.type === "transport" && report.selectedCandidatePairId) {
          pair = stats.get(report.selectedCandidatePairId);
        }
      });
      const local = pair && stats.get(pair.localCandidateId);
      if (!local) return null;
      return local.candidateType === "relay" ? `turn/${local.relayProtocol ?? "udp"}` : "direct";
    } catch {
      return null;
    }
  }

  /** Open the socket and join; resolves with the relay's welcome, rejects with a RelayError. */
  connect(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      let welcomed = false;
      const fail = (code, message) => {
        if (welcomed) return;
        welcomed = true;
        clearTimeout(timer);
        this.close({ leave: false });
        reject(new RelayError(code, message));
      };
      const timer = setTimeout(() => fail("timeout", `no welcome from ${this.url}`), timeoutMs);
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (error) {
        fail("relay_unreachable", String(error));
        return;
      }
      this._ws = ws;
      ws.onopen = () =>
        this._send({
          type: "join",
          token: this.token,
          protocol: PROTOCOL_VERSION,
          publish: [...this.localTracks.keys()].sort(),
          video_codec: this.videoCodec,
          simulcast: SIMULCAST,
        });
      ws.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch {
          return;
        }
        if (msg.type === "welcome" && !welcomed) {
          welcomed = true;
          clearTimeout(timer);
          this.participantId = msg.participant_id;
          for (const participant of msg.participants) {
            this.participants.set(participant.participant_id, participant);
          }
          resolve(msg);
        } else if (msg.type === "error" && !welcomed) {
          this.closeReason = msg.code;
          fail(msg.code, msg.message);
          return;
        }
        this._dispatch(msg);
      };
      ws.onerror = () => fail("relay_unreachable", `cannot reach the relay at ${this.url}`);
      ws.onclose = (event) => {
        fail(this.closeReason || "closed", event.reason || "the relay closed the connection");
        this._onClosed(event.reason);
      };
    });
  }

  _send(body) {
    if (this._ws?.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(body));
  }

  _dispatch(msg) {
    switch (msg.type) {
      case "welcome":
        return;
      case "offer":
        this._negotiating = this._negotiating
          .then(() => this._answer(msg))
          .catch((error) => this.emit("error", { code: "negotiation_failed", message: String(error) }));
        return;
      case "error":
        this.emit("error", msg);
        return;
      case "meeting_ended":
      case "migrate":
      case "removed":
        this.closeReason = msg.reason ?? msg.type;
        break;
      case "participant_joined":
        this.participants.set(msg.participant.participant_id, msg.participant);
        break;
      case "participant_left":
        this.participants.delete(msg.participant_id);
        break;
      case "track_unpublished":
        for (const [mid, remote] of this.remoteTracks) {
          if (remote.info.track_id === msg.track_id) this.remoteTracks.delete(mid);
        }
        break;
    }
    this.emit(msg.type, msg);
  }

  async _answer(offer) {
    await this.pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    for (const [mid, slot] of Object.entries(offer.tracks)) {
      const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid);
      if (!transceiver) continue;
      if ("publish" in slot) {
        const track = this.localTracks.get(slot.publish);
        if (track && this.publishing.get(slot.publish) !== transceiver) {
          this.publishing.set(slot.publish, transceiver);
          await transceiver.sender.replaceTrack(this.muted.has(slot.publish) ? null : track);
          transceiver.direction = "sendonly";
        }
      } else if (this.remoteTracks.get(mid)?.info.track_id !== slot.track_id) {
        const remote = { info: slot, track: transceiver.receiver.track };
        this.remoteTracks.set(mid, remote);
        this.emit("track", remote);
      }
    }
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this._findUndecodable(offer.sdp);
    await this._gathered();
    this._send({ type: "answer", negotiation: offer.negotiation, sdp: this.pc.localDescription.sdp });
  }

  /** Remote m-lines this browser's answer rejected: the relay forwards each track in its publisher's
   * codec (never transcoded), and one this browser cannot decode (H.264 in a Firefox without the
   * OpenH264 plugin) is stopped by the answer. Each is told once (`track_undecodable {info, codec}`), so the
   * page can say so instead of showing a black tile. */
  _findUndecodable(offerSdp) {
    for (const [mid, remote] of this.remoteTracks) {
      if (remote.undecodable) continue;
      const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid);
      if (transceiver && !transceiver.stopped && transceiver.currentDirection !== "stopped") continue;
      remote.undecodable = offeredCodec(offerSdp, mid) ?? "a codec";
      this.emit("track_undecodable", { info: remote.info, codec: remote.undecodable });
    }
  }

  /** Until ICE gathering completes (host candidates only: milliseconds), at most GATHER_TIMEOUT_MS. */
  _gathered() {
    if (this.pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => this.pc.iceGatheringState === "complete" && done();
      const timer = setTimeout(done, GATHER_TIMEOUT_MS);
      this.pc.addEventListener("icegatheringstatechange", check);
    });
  }

  // --- what this side sends --------------------------------------------------------------------------

  /** Start sending `source` (e.g. a screen share): the relay answers with an offer holding its m-line. */
  publish(source, track) {
    this.localTracks.set(source, track);
    this._send({ type: "publish", source, video_codec: this.videoCodec, simulcast: SIMULCAST });
  }

  /** The best quality wanted of a remote video ("low", "medium", "high"): the relay sends at most that. */
  setVideoQuality(trackId, quality) {
    this._send({ type: "video_quality", track_id: trackId, quality });
  }

  unpublish(source) {
    this.localTracks.delete(source);
    const transceiver = this.publishing.get(source);
    this.publishing.delete(source);
    transceiver?.sender.replaceTrack(null);
    this._send({ type: "unpublish", source });
  }

  /** A new capture for a source already published (the camera turned back on), no renegotiation. */
  async replaceTrack(source, track) {
    this.localTracks.set(source, track);
    const transceiver = this.publishing.get(source);
    if (transceiver && !this.muted.has(source)) await transceiver.sender.replaceTrack(track);
  }

  /** Stop sending `source` (nothing leaves the browser) or resume; the others are told. */
  setHand(raised, participantId = null) {
    this._send(participantId ? { type: "hand", raised, participant_id: participantId } : { type: "hand", raised });
  }

  async setMuted(source, muted) {
    if (muted) this.muted.add(source);
    else this.muted.delete(source);
    const transceiver = this.publishing.get(source);
    const track = muted ? null : (this.localTracks.get(source) ?? null);
    if (transceiver) await transceiver.sender.replaceTrack(track);
    this._send({ type: "mute", source, muted });
  }

  /** chat {notice}, reaction {notice} (the API's signed notices of what it stored), end {} ... */
  send(body) {
    this._send(body);
  }

  get open() {
    return !this.closed && this._ws?.readyState === WebSocket.OPEN;
  }

  close({ leave = true } = {}) {
    if (this.closed) return;
    this.closed = true;
    if (leave) this._send({ type: "leave" });
    this._ws?.close(1000);
    this.pc.close();
  }

  _onClosed(reason) {
    const wasOpen = !this.closed;
    this.closed = true;
    this.pc.close();
    this.emit("closed", { reason: this.closeReason || reason || "closed", unexpected: wasOpen });
  }
}
