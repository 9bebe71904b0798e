/**
 * Upload a recording kept in this browser with the API's multipart flow (functions/routes/recordings.py,
 * as the SDK's Client.upload_recording): start (the API checks quotas and hands out presigned part
 * URLs), PUT each part straight to S3, complete. The recording id is stored as soon as the API gives it,
 * so after a reload or a dropped network the API's resume endpoint says which parts S3 already holds and
 * only the others are sent. The bytes leave IndexedDB only once the API says the file is whole.
 */
import { ApiError, normalizeMeetingId } from "./api.js";
import { deleteRecording, recordingBlob, saveRecording } from "./recording-store.js";

const PUT_RETRIES = 3;

/** The API refused the upload (quota, meeting ended long ago, ...): retrying now will not help. */
export class UploadRefused extends Error {
  constructor(error) {
    super(error.message);
    this.code = error.code;
  }
}

function base(row) {
  return `/meetings/${encodeURIComponent(normalizeMeetingId(row.meetingId))}/recordings`;
}

/**
 * Upload (or resume) `row`; `onProgress(sentBytes, totalBytes)` after each part. Resolves with the API's
 * RecordingOut. Throws UploadRefused (the row is kept as "failed" with the reason) or another error (a
 * network failure: the row stays resumable).
 */
export async function uploadRecording(api, row, { onProgress = () => {}, partSize = null } = {}) {
  const blob = await recordingBlob(row.localId, row.contentType);
  if (!blob.size) throw new Error("the recording is empty");
  let plan;
  try {
    plan = row.recordingId ? await resumePlan(api, row) : await startPlan(api, row, blob.size, partSize);
  } catch (error) {
    if (error instanceof ApiError && !error.retryable) {
      row.state = "failed";
      row.error = error.message;
      await saveRecording(row);
      throw new UploadRefused(error);
    }
    throw error;
  }
  if (plan.complete) return finish(row, plan.complete);
  let sent = plan.uploaded.reduce((total, part) => total + part.size, 0);
  onProgress(sent, blob.size);
  for (const part of plan.pending) {
    const start = (part.part_number - 1) * plan.part_size;
    await putPart(part.url, blob.slice(start, start + part.size));
    sent += part.size;
    onProgress(sent, blob.size);
  }
  const recording = await api.request("POST", `${base(row)}/${row.recordingId}/complete`, { body: {} });
  return finish(row, recording);
}

async function startPlan(api, row, size, partSize) {
  const body = { filename: row.filename, content_type: row.contentType, size };
  if (partSize) body.part_size = partSize;
  const plan = await api.request("POST", base(row), { body });
  Object.assign(row, { recordingId: plan.recording_id, state: "uploading", size, error: null });
  await saveRecording(row); // from here on, a reload resumes this upload
  return plan;
}

/** What S3 holds of an earlier upload; {complete} when the API already has it whole (a lost answer). */
async function resumePlan(api, row) {
  try {
    return await api.request("GET", `${base(row)}/${row.recordingId}/upload`);
  } catch (error) {
    if (error instanceof ApiError && error.code === "upload_closed") {
      const recording = await api.request("GET", `${base(row)}/${row.recordingId}`);
      if (recording.status === "complete") return { complete: recording };
    }
    throw error;
  }
}

async function putPart(url, bytes) {
  let failure = null;
  for (let attempt = 0; attempt <= PUT_RETRIES; attempt++) {
    if (attempt) await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
    try {
      const response = await fetch(url, { method: "PUT", body: bytes });
      if (response.ok) return;
      failure = new Error(`storage answered ${response.status}`);
      if (response.status < 500) break; // an expired or refused URL: resume for fresh ones
    } catch (error) {
      failure = new Error(`the upload was interrupted (${error.message})`);
    }
  }
  throw failure;
}

async function finish(row, recording) {
  await deleteRecording(row.localId);
  return recording;
}
