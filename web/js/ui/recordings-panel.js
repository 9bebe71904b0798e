/**
 * Recording in the meeting page: the Record button, what is being recorded and uploaded (with progress),
 * this browser's recordings not yet uploaded whole (Retry where the API refused one), and the meeting's
 * finished recordings with their download links.
 *
 * `resumeUploads(api)` runs after signing in too: a recording whose upload a reload, a closed tab or a
 * dropped network interrupted continues from the parts S3 already holds.
 */
import { ApiError, normalizeMeetingId } from "../api.js";
import { MeetingRecorder } from "../recording.js";
import { listRecordings } from "../recording-store.js";
import { UploadRefused, uploadRecording } from "../recording-upload.js";
import { $, describe, h, toast } from "./dom.js";

const inFlight = new Map(); // localId -> the upload's promise (one upload per recording at a time)

/**
 * Upload every recording this browser still holds (of one meeting, or all). `onProgress(row, sent, total)`
 * and `onDone(row, recordingOrError)` report each; recordings the API refused stay until retried.
 */
export async function resumeUploads(api, { meetingId = null, onProgress = () => {}, onDone = () => {}, retryFailed = false } = {}) {
  let rows;
  try {
    rows = await listRecordings();
  } catch (error) {
    console.warn("recordings kept in this browser are unavailable", error);
    return;
  }
  const mine = rows.filter((row) => !meetingId || row.meetingId === normalizeMeetingId(meetingId));
  await Promise.all(mine.filter((row) => retryFailed || row.state !== "failed").map((row) => upload(api, row, { onProgress, onDone })));
}

/** Upload one recording (joining the upload already running for it, if any). */
export function upload(api, row, { onProgress = () => {}, onDone = () => {}, partSize = null } = {}) {
  if (!inFlight.has(row.localId)) {
    const running = (async () => {
      if (row.state === "recording") row.state = "recorded"; // cut short by a reload: kept as it is
      try {
        const recording = await uploadRecording(api, row, { onProgress: (sent, total) => onProgress(row, sent, total), partSize });
        onDone(row, recording);
      } catch (error) {
        onDone(row, error);
      } finally {
        inFlight.delete(row.localId);
      }
    })();
    inFlight.set(row.localId, running);
  }
  return inFlight.get(row.localId);
}

export function mountRecordings(meeting) {
  const button = $("#toggle-record");
  const status = $("#recording-status");
  const progress = $("#upload-progress");
  const list = $("#recordings-list");
  const api = meeting.api;
  let recorder = null;
  let timer = null;
  let unmounted = false;
  /** Options of the page's own uploads; tests set window.meetup.recordingPartSize (bytes, >= 5 MiB). */
  const options = () => ({ onProgress: showProgress, onDone: uploaded, partSize: window.meetup?.recordingPartSize ?? null });

  function showProgress(row, sent, total) {
    progress.hidden = false;
    progress.value = total ? sent / total : 0;
    status.textContent = `Uploading ${row.filename}: ${Math.floor((100 * sent) / total)} %`;
  }

  function uploaded(row, result) {
    progress.hidden = true;
    if (result instanceof Error) {
      const kept = "it is kept in this browser";
      if (result instanceof UploadRefused) {
        status.textContent = `Upload refused: ${result.message} (${kept}).`;
        toast(`The recording was not uploaded: ${result.message}. ${kept[0].toUpperCase()}${kept.slice(1)}.`, "error");
      } else {
        status.textContent = `Upload interrupted: ${describe(result)} (${kept}; it resumes when you are back online).`;
      }
    } else {
      status.textContent = `Uploaded ${result.filename}.`;
    }
    render();
  }

  async function toggle() {
    button.disabled = true;
    try {
      if (recorder) {
        clearInterval(timer);
        const row = await recorder.stop();
        recorder = null;
        status.textContent = "Recording saved in this browser; uploading…";
        upload(api, row, options());
      } else {
        recorder = new MeetingRecorder(meeting, $("#grid"));
        await recorder.start();
        const started = Date.now();
        timer = setInterval(() => {
          const s = Math.floor((Date.now() - started) / 1000);
          status.textContent = `Recording ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
        }, 500);
        status.textContent = "Recording 0:00";
      }
    } catch (error) {
      recorder = null;
      toast(`Recording failed: ${describe(error)}`, "error");
    } finally {
      button.disabled = false;
      button.textContent = recorder ? "Stop recording" : "Record";
      button.setAttribute("aria-pressed", String(Boolean(recorder)));
      render();
    }
  }

  async function render() {
    if (unmounted) return;
    const local = (await listRecordings().catch(() => [])).filter((row) => row.meetingId === meeting.meetingId);
    let remote = [];
    try {
      remote = await api.request("GET", `/meetings/${encodeURIComponent(meeting.meetingId)}/recordings`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
    const items = [
      ...local.map((row) =>
        h(
          "li",
          { class: `local ${row.state}`, dataset: { localId: row.localId } },
          `${row.filename} — ${row.state === "failed" ? `not uploaded: ${row.error}` : "in this browser"} `,
          row.state === "failed" || !inFlight.has(row.localId)
            ? h("button", { type: "button", class: "retry", onclick: () => upload(api, row, options()) }, row.state === "failed" ? "Retry" : "Upload")
            : null,
        ),
      ),
      ...remote.map((rec) =>
        h(
          "li",
          { class: "uploaded", dataset: { recordingId: rec.recording_id } },
          h("a", { href: rec.download_url, download: rec.filename, class: "download" }, rec.filename),
          ` (${(rec.size / 1e6).toFixed(1)} MB)`,
        ),
      ),
    ];
    list.replaceChildren(...items);
  }

  const onOnline = () => resumeUploads(api, { meetingId: meeting.meetingId, ...options() });
  button.addEventListener("click", toggle);
  window.addEventListener("online", onOnline);
  render();
  onOnline(); // what a reload or a closed tab left unfinished

  return async () => {
    unmounted = true;
    button.removeEventListener("click", toggle);
    window.removeEventListener("online", onOnline);
    clearInterval(timer);
    if (recorder) {
      const row = await recorder.stop().catch(() => null); // leaving stops the recording and keeps it
      if (row) upload(api, row, options());
    }
    button.textContent = "Record";
    button.setAttribute("aria-pressed", "false");
  };
}
