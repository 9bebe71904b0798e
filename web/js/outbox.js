/**
 * Chat messages and reactions that reach the API exactly once, even across a dropped network.
 *
 * Each item gets its idempotency key when queued and keeps it across retries, so a retry after a lost
 * answer returns the stored item instead of storing a duplicate. Items go out in order, one at a time;
 * an item the API refuses for good (meeting ended, invalid text) is rejected and the queue moves on.
 * The same design as the Python SDK's client_sdk/outbox.py.
 */
import { ApiError, newIdempotencyKey } from "./api.js";

export class Outbox {
  /**
   * @param send (kind, body, idempotencyKey) => Promise<stored item>
   * @param onStored (item, stored) => void, called once per item, in order
   */
  constructor(send, onStored, { maxBackoffMs = 5000 } = {}) {
    this.send = send;
    this.onStored = onStored;
    this.maxBackoffMs = maxBackoffMs;
    this.pending = [];
    this.closed = false;
    this._running = null;
  }

  /** Queue "chat" text or a "reaction" emoji; resolves with what the API stored. */
  put(kind, body) {
    if (this.closed) return Promise.reject(new ApiError(0, "outbox_closed", "the meeting is over"));
    return new Promise((resolve, reject) => {
      this.pending.push({ kind, body, key: newIdempotencyKey(), attempts: 0, resolve, reject });
      this._running ??= this._run().finally(() => (this._running = null));
    });
  }

  /** Wait until everything queued is stored or refused, at most `timeoutMs`. */
  async flush(timeoutMs = 5000) {
    if (!this._running) return;
    await Promise.race([this._running, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
  }

  close() {
    this.closed = true;
    for (const item of this.pending.splice(0)) {
      item.reject(new ApiError(0, "outbox_closed", "the meeting is over"));
    }
  }

  async _run() {
    let backoffMs = 250;
    while (this.pending.length && !this.closed) {
      const item = this.pending[0];
      item.attempts += 1;
      let stored;
      try {
        stored = await this.send(item.kind, item.body, item.key);
      } catch (error) {
        if (error instanceof ApiError && error.retryable) {
          const delay = error.retryAfterS ? error.retryAfterS * 1000 : backoffMs;
          await new Promise((resolve) => setTimeout(resolve, delay));
          backoffMs = Math.min(this.maxBackoffMs, backoffMs * 2);
          continue;
        }
        this.pending.shift();
        item.reject(error);
        continue;
      }
      backoffMs = 250;
      this.pending.shift();
      try {
        await this.onStored(item, stored);
      } finally {
        item.resolve(stored);
      }
    }
  }
}
