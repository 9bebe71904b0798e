/**
 * Record the meeting as this browser shows it, as the SDK's recorder does (client_sdk/media/recorder.py):
 * a grid of the videos on screen drawn on a canvas, and a WebAudio mix of every voice (this microphone
 * and every remote one), through `MediaRecorder` into WebM.
 *
 * Every second's chunk goes to IndexedDB (recording-store.js) as it comes, so a reload or a crash keeps
 * what was recorded; after stopping, recording-upload.js sends it to the API.
 */
import { addChunk, saveRecording } from "./recording-store.js";

const FPS = 24;
const SIZE = { width: 1280, height: 720 };
const CHUNK_MS = 1000;

/**
 * The WebM flavour this browser records: VP9 + Opus first. Chromium 156's MediaRecorder with VP8 at 1280x720
 * kept only the first 0.1-0.8 s of video of a 3 s recording here (the canvas drawn 50-150 times), VP9 kept
 * 47-70 frames over the whole 3 s (checked headless, --disable-gpu, on a loaded 2-core machine).
 */
export function recordingMimeType() {
  const candidates = ["video/webm;codecs=vp9,opus", "video/webm;codecs=vp8,opus", "video/webm"];
  return candidates.find((type) => globalThis.MediaRecorder?.isTypeSupported(type)) ?? null;
}

export class MeetingRecorder {
  /** `grid`: the element whose visible <video>s make the picture. */
  constructor(meeting, grid, { videoBitsPerSecond = 2_500_000 } = {}) {
    this.meeting = meeting;
    this.grid = grid;
    this.videoBitsPerSecond = videoBitsPerSecond;
    this.row = null;
    this._voices = new Map(); // MediaStreamTrack -> MediaStreamAudioSourceNode
    this._saved = Promise.resolve();
    this._cleanups = [];
  }

  get recording() {
    return this.recorder?.state === "recording";
  }

  async start() {
    const mimeType = recordingMimeType();
    if (!mimeType) throw new Error("this browser cannot record (no MediaRecorder for WebM)");
    this.canvas = Object.assign(document.createElement("canvas"), SIZE);
    this.ctx = this.canvas.getContext("2d");
    this._draw();
    this.audio = new AudioContext();
    await this.audio.resume().catch(() => {});
    this.mix = this.audio.createMediaStreamDestination();
    // A silent source keeps the audio track running while nobody has a microphone.
    const silence = this.audio.createConstantSource();
    silence.offset.value = 0;
    silence.connect(this.mix);
    silence.start();
    this._voice(this.meeting.localTracks.get("microphone"));
    for (const { info, track } of this.meeting.remoteTracks.values()) if (info.kind === "audio") this._voice(track);
    this._cleanups.push(
      this.meeting.on("track_added", ({ info, track }) => info.kind === "audio" && this._voice(track)),
      this.meeting.on("local_tracks", () => this._voice(this.meeting.localTracks.get("microphone"))),
    );
    // Frames are pushed by hand after each drawing (captureStream(0) + requestFrame): Chromium's automatic
    // capture of a canvas outside the page stalled after a fraction of a second in headless runs.
    this.videoTrack = this.canvas.captureStream(0).getVideoTracks()[0];
    const stream = new MediaStream([this.videoTrack, this.mix.stream.getAudioTracks()[0]]);
    const started = new Date();
    this.row = {
      localId: crypto.randomUUID(),
      meetingId: this.meeting.meetingId,
      filename: `meeting-${this.meeting.meetingId}-${started.toISOString().replace(/[:.]/g, "-")}.webm`,
      contentType: "video/webm",
      state: "recording",
      recordingId: null,
      size: 0,
      startedAt: started.getTime(),
      error: null,
    };
    await saveRecording(this.row);
    let seq = 0;
    this.recorder = new MediaRecorder(stream, {
      mimeType,
      videoBitsPerSecond: this.videoBitsPerSecond,
      audioBitsPerSecond: 128_000,
    });
    this.recorder.ondataavailable = ({ data }) => {
      if (!data.size) return;
      const n = seq++;
      this.row.size += data.size;
      this._saved = this._saved.then(() => addChunk(this.row.localId, n, data));
    };
    this.recorder.start(CHUNK_MS);
    this._timer = setInterval(() => this._draw(), 1000 / FPS);
  }

  /** Stop; resolves with the stored recording (state "recorded") once every chunk is in IndexedDB. */
  async stop() {
    if (!this.recorder) return null;
    if (this.recorder.state !== "inactive") {
      const stopped = new Promise((resolve) => this.recorder.addEventListener("stop", resolve, { once: true }));
      this.recorder.stop();
      await stopped;
    }
    clearInterval(this._timer);
    for (const cleanup of this._cleanups) cleanup();
    for (const track of this.recorder.stream.getTracks()) track.stop();
    await this.audio.close().catch(() => {});
    await this._saved;
    this.row.state = "recorded";
    await saveRecording(this.row);
    return this.row;
  }

  _voice(track) {
    if (!track || track.kind !== "audio" || this._voices.has(track) || track.readyState !== "live") return;
    const source = this.audio.createMediaStreamSource(new MediaStream([track]));
    source.connect(this.mix);
    this._voices.set(track, source);
    track.addEventListener("ended", () => {
      source.disconnect();
      this._voices.delete(track);
    });
  }

  /** The grid as on screen: every playing video, in rows and columns, each fitted whole into its cell. */
  _draw() {
    const { ctx, canvas } = this;
    ctx.fillStyle = "#111418";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const videos = [...this.grid.querySelectorAll("video")].filter((v) => !v.hidden && v.videoWidth > 0);
    const cols = Math.ceil(Math.sqrt(videos.length));
    const rows = Math.ceil(videos.length / cols);
    const cellW = canvas.width / cols;
    const cellH = canvas.height / rows;
    videos.forEach((video, i) => {
      const scale = Math.min(cellW / video.videoWidth, cellH / video.videoHeight);
      const w = video.videoWidth * scale;
      const h = video.videoHeight * scale;
      const x = (i % cols) * cellW + (cellW - w) / 2;
      const y = Math.floor(i / cols) * cellH + (cellH - h) / 2;
      ctx.drawImage(video, x, y, w, h);
    });
    this.videoTrack?.requestFrame();
  }
}
