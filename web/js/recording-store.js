/**
 * Recordings kept in this browser (IndexedDB) until the API has them whole: a reload, a crash or a
 * dropped network loses nothing. Each recording is a row {localId, meetingId, filename, contentType,
 * state, recordingId, size, error} and its chunks, in order, as MediaRecorder gave them.
 *
 * States: "recording" (chunks still coming; after a reload it is finished as it is), "recorded" (to
 * upload), "uploading" (recordingId says which upload the API holds: resume it), "failed" (the API refused
 * it: error says why; the bytes stay here).
 */

const DB_NAME = "meetup-recordings";
const RECORDINGS = "recordings";
const CHUNKS = "chunks";

let opened = null;

function db() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(RECORDINGS, { keyPath: "localId" });
      request.result.createObjectStore(CHUNKS, { keyPath: ["localId", "seq"] });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => {
      opened = null;
      reject(request.error);
    };
  });
  return opened;
}

/** Run `work(stores)` in one transaction; resolves with its result once the transaction commits. */
async function transact(mode, work) {
  const tx = (await db()).transaction([RECORDINGS, CHUNKS], mode);
  const result = work({ recordings: tx.objectStore(RECORDINGS), chunks: tx.objectStore(CHUNKS) });
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
  return result instanceof IDBRequest ? result.result : result;
}

export function saveRecording(row) {
  return transact("readwrite", ({ recordings }) => recordings.put(row));
}

export function addChunk(localId, seq, blob) {
  return transact("readwrite", ({ chunks }) => chunks.put({ localId, seq, blob }));
}

export function getRecording(localId) {
  return transact("readonly", ({ recordings }) => recordings.get(localId));
}

/** Every recording this browser still holds (not yet uploaded whole). */
export function listRecordings() {
  return transact("readonly", ({ recordings }) => recordings.getAll());
}

/** The recording's bytes, its chunks in order, as one Blob. */
export async function recordingBlob(localId, contentType) {
  const range = IDBKeyRange.bound([localId, 0], [localId, Number.MAX_SAFE_INTEGER]);
  const rows = await transact("readonly", ({ chunks }) => chunks.getAll(range));
  return new Blob(
    rows.sort((a, b) => a.seq - b.seq).map((row) => row.blob),
    { type: contentType },
  );
}

/** Forget a recording once the API holds it whole. */
export function deleteRecording(localId) {
  const range = IDBKeyRange.bound([localId, 0], [localId, Number.MAX_SAFE_INTEGER]);
  return transact("readwrite", ({ recordings, chunks }) => {
    recordings.delete(localId);
    chunks.delete(range);
  });
}
