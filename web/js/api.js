/**
 * The control-plane API over fetch: accounts and tokens, settings and image uploads, meetings, chat.
 *
 * Every error is an ApiError carrying the API's {"error": {"code", "message"}}; a network failure has
 * status 0. The session (access + refresh token) lives in sessionStorage: one tab, gone when it closes.
 * An access token that expired is refreshed once, transparently (refresh tokens rotate on every use).
 */

const SESSION_KEY = "meetup.session";

export class ApiError extends Error {
  constructor(status, code, message, retryAfterS = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }

  /** Worth retrying with the same idempotency key: offline, throttled or a server fault. */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/** A fresh idempotency key (the API accepts 8-64 of [A-Za-z0-9_-]). */
export function newIdempotencyKey() {
  return crypto.randomUUID();
}

/** "123 456-7890" -> "1234567890": meeting IDs as people type them. */
export function normalizeMeetingId(text) {
  return String(text).replace(/[\s-]/g, "");
}

export class Api {
  constructor(baseUrl = "") {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.session = readSession();
    this._refreshing = null;
    /** Called when the session ends without a sign-out (the refresh token was refused). */
    this.onSessionExpired = null;
  }

  /** The API named by config.json next to index.html ("" = this origin). */
  static async fromConfig(url = "config.json") {
    let config = {};
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (response.ok) config = await response.json();
    } catch {
      // no config: same origin
    }
    return new Api(config.apiBaseUrl ?? "");
  }

  get user() {
    return this.session?.user ?? null;
  }

  /** An image link from the settings (relative to the API's base URL) as an absolute URL. */
  mediaUrl(url) {
    return url && url.startsWith("/") ? this.baseUrl + url : url;
  }

  get signedIn() {
    return Boolean(this.session?.access_token);
  }

  async request(method, path, { body, auth = true, retryAuth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.session) headers.Authorization = `Bearer ${this.session.access_token}`;
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "network_error", "cannot reach the server");
    }
    if (response.status === 401 && auth && retryAuth && this.session?.refresh_token) {
      if (await this.refresh()) return this.request(method, path, { body, auth, retryAuth: false });
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? {};
      const retryAfter = Number(response.headers.get("Retry-After")) || 0;
      throw new ApiError(
        response.status,
        error.code ?? `http_${response.status}`,
        error.message ?? response.statusText,
        retryAfter,
      );
    }
    return data;
  }

  // --- accounts ------------------------------------------------------------------------------------

  async register(email, password, displayName) {
    await this.request("POST", "/auth/register", {
      body: { email, password, display_name: displayName },
      auth: false,
    });
    return this.login(email, password);
  }

  async login(email, password) {
    const tokens = await this.request("POST", "/auth/login", { body: { email, password }, auth: false });
    this._store(tokens);
    return tokens.user;
  }

  /** Trade the refresh token for new tokens, once at a time; false (and signed out) if refused. */
  refresh() {
    this._refreshing ??= (async () => {
      try {
        const tokens = await this.request("POST", "/auth/refresh", {
          body: { refresh_token: this.session.refresh_token },
          auth: false,
        });
        this._store(tokens);
        return true;
      } catch (error) {
        if (!(error instanceof ApiError) || !error.retryable) {
          this._store(null);
          this.onSessionExpired?.();
        }
        return false;
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  async logout() {
    const refreshToken = this.session?.refresh_token;
    this._store(null);
    if (refreshToken) {
      const body = { refresh_token: refreshToken };
      await this.request("POST", "/auth/logout", { body, auth: false }).catch(() => {});
    }
  }

  _store(tokens) {
    this.session = tokens
      ? { access_token: tokens.access_token, refresh_token: tokens.refresh_token, user: tokens.user }
      : null;
    if (this.session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  // --- settings ------------------------------------------------------------------------------------

  settings() {
    return this.request("GET", "/settings");
  }

  updateSettings(changes) {
    return this.request("PATCH", "/settings", { body: changes });
  }

  /**
   * Upload an image with the presigned POST the API hands out, and return its key (then PATCH it).
   *
   * The form goes straight to S3. A multipart POST is a "simple" request, so no CORS preflight is
   * needed; it is sent `no-cors` because the answer is not needed here (and moto, the local S3, sends
   * no CORS headers): setting the key in /settings is the check, the API verifies the object exists,
   * is within the size limit and really is the declared image type.
   */
  async uploadImage(purpose, file) {
    const plan = await this.request("POST", "/settings/images", {
      body: { purpose, content_type: file.type, size: file.size },
    });
    const form = new FormData();
    for (const [name, value] of Object.entries(plan.fields)) form.append(name, value);
    form.append("file", file);
    try {
      await fetch(plan.url, { method: "POST", body: form, mode: "no-cors" });
    } catch {
      throw new ApiError(0, "upload_failed", "the image could not be uploaded");
    }
    return plan.key;
  }

  async setPhoto(file) {
    const key = await this.uploadImage("photo", file);
    return this.updateSettings({ photo_key: key });
  }

  async setBackground(mode, file = null) {
    if (mode !== "image") return this.updateSettings({ background: { mode } });
    const key = await this.uploadImage("background", file);
    return this.updateSettings({ background: { mode, image_key: key } });
  }

  // --- meetings ------------------------------------------------------------------------------------

  createMeeting({ title, passcode, maxParticipants, maxDurationMinutes } = {}) {
    const body = {};
    if (title) body.title = title;
    if (passcode) body.passcode = passcode;
    if (maxParticipants) body.max_participants = maxParticipants;
    if (maxDurationMinutes) body.max_duration_minutes = maxDurationMinutes;
    return this.request("POST", "/meetings", { body });
  }

  getMeeting(meetingId) {
    return this.request("GET", `/meetings/${meetingPath(meetingId)}`);
  }

  /** A join token and the relays to use, best first (the host and rejoining people need no passcode). */
  joinMeeting(meetingId, passcode = null, region = null) {
    const body = {};
    if (passcode) body.passcode = passcode;
    if (region) body.region = region;
    return this.request("POST", `/meetings/${meetingPath(meetingId)}/join`, { body });
  }

  leaveMeeting(meetingId) {
    return this.request("POST", `/meetings/${meetingPath(meetingId)}/leave`);
  }

  endMeeting(meetingId) {
    return this.request("POST", `/meetings/${meetingPath(meetingId)}/end`);
  }

  // --- chat and reactions --------------------------------------------------------------------------

  /** Every stored message, oldest first. */
  async chatHistory(meetingId) {
    const messages = [];
    let cursor = null;
    for (;;) {
      const query = new URLSearchParams({ limit: "100" });
      if (cursor) query.set("cursor", cursor);
      const page = await this.request("GET", `/meetings/${meetingPath(meetingId)}/chat?${query}`);
      messages.push(...page.items);
      if (!page.has_more || !page.next_cursor) return messages;
      cursor = page.next_cursor;
    }
  }

  sendChat(meetingId, text, idempotencyKey) {
    return this.request("POST", `/meetings/${meetingPath(meetingId)}/chat`, {
      body: { text, idempotency_key: idempotencyKey },
    });
  }

  react(meetingId, emoji, idempotencyKey) {
    return this.request("POST", `/meetings/${meetingPath(meetingId)}/reactions`, {
      body: { emoji, idempotency_key: idempotencyKey },
    });
  }
}

function meetingPath(meetingId) {
  return encodeURIComponent(normalizeMeetingId(meetingId));
}

function readSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
  } catch {
    return null;
  }
}
