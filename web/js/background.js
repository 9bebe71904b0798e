/**
 * Background blur and replace on the camera, in the browser: the same effect the Python SDK applies
 * (client_sdk/media/background.py), from the same setting ({mode: "none" | "blur" | "image"}).
 *
 * MediaPipe's selfie segmentation (npm `@mediapipe/selfie_segmentation`, model and wasm served with the
 * app from vendor/selfie_segmentation/, never from a CDN) gives a person mask per camera frame; a canvas
 * draws the frame where the mask says person and the blurred frame (or the image, cover-fitted) elsewhere,
 * and `canvas.captureStream()` is the track that is published instead of the raw camera. Frames are taken
 * as the camera delivers them (`requestVideoFrameCallback`); while the model is busy with one, newer frames
 * replace older ones, so a slow machine lowers the frame rate, never the latency.
 *
 * Whatever cannot work (no wasm or WebGL, a model that does not load, an image that is not an image, a
 * frame that fails) falls back to the raw camera with a message: never a black video.
 */

const VENDOR = new URL("../vendor/selfie_segmentation/", import.meta.url).href;
/** Blur strength as the SDK's (a Gaussian whose sigma is 3 % of the frame's width). */
const BLUR_OF_WIDTH = 0.03;
/** What the segmentation model gets across (its landscape model's input is 256x144). */
const MODEL_WIDTH = 256;
const LOAD_TIMEOUT_MS = 30_000;
export const BACKGROUND_MODES = ["none", "blur", "image"];

export class BackgroundError extends Error {}

let segmenterLoad = null;

/** The model, loaded once per page (the script defines a global; it is not an ES module). */
function loadSegmenter() {
  segmenterLoad ??= withTimeout(
    (async () => {
      if (typeof WebAssembly !== "object") throw new BackgroundError("this browser has no WebAssembly");
      if (!globalThis.SelfieSegmentation) await loadScript(`${VENDOR}selfie_segmentation.js`);
      const segmenter = new globalThis.SelfieSegmentation({ locateFile: (file) => `${VENDOR}${file}` });
      segmenter.setOptions({ modelSelection: 1 }); // the landscape model, as the SDK (model_selection=1)
      await segmenter.initialize();
      return segmenter;
    })(),
    LOAD_TIMEOUT_MS,
    "the segmentation model did not load in time",
  ).catch((error) => {
    segmenterLoad = null; // a later try may work (e.g. the network came back)
    throw error instanceof BackgroundError ? error : new BackgroundError(error?.message ?? String(error));
  });
  return segmenterLoad;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new BackgroundError(`cannot load ${src}`));
    document.head.append(script);
  });
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new BackgroundError(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Decode an image (a Blob or File, or a URL to fetch); BackgroundError when it is not an image. */
export async function decodeImage(source) {
  let blob = source;
  if (typeof source === "string") {
    let response;
    try {
      response = await fetch(source);
    } catch {
      throw new BackgroundError("the background image could not be downloaded");
    }
    if (!response.ok) throw new BackgroundError(`the background image could not be downloaded (${response.status})`);
    blob = await response.blob();
  }
  try {
    return await createImageBitmap(blob);
  } catch {
    throw new BackgroundError("the background image is not an image this browser can read (use JPEG, PNG or WebP)");
  }
}

/**
 * The camera with an effect. `apply(raw)` returns the track to publish (the processed one, or the raw
 * camera when the mode is "none" or the effect cannot run); `onFallback(raw, reason)` is called when a
 * running effect fails, so the publisher can put the raw camera back.
 */
export class CameraEffect {
  constructor({ onFallback = () => {} } = {}) {
    this.mode = "none";
    this.image = null; // ImageBitmap for "image"
    this.raw = null;
    this.onFallback = onFallback;
    this._pipeline = null;
  }

  /** Change the setting; BackgroundError (setting unchanged) for an image that cannot be read. */
  async configure(mode, image = null) {
    if (!BACKGROUND_MODES.includes(mode)) throw new BackgroundError(`unknown background mode: ${mode}`);
    if (mode === "image") {
      if (!image) throw new BackgroundError("choose an image for the background");
      this.image = image instanceof ImageBitmap ? image : await decodeImage(image);
    }
    this.mode = mode;
  }

  /** The track to publish for this raw camera track (and the effect follows it from now on). */
  async apply(raw) {
    if (this.raw !== raw) this._stopPipeline();
    this.raw = raw;
    if (this.mode === "none" || !raw || raw.readyState !== "live") {
      this._stopPipeline();
      return raw;
    }
    if (!this._pipeline) {
      const segmenter = await loadSegmenter(); // BackgroundError: the caller keeps the raw camera
      this._pipeline = new Pipeline(raw, segmenter, this, (reason) => {
        this._stopPipeline();
        this.onFallback(raw, reason);
      });
    }
    return this._pipeline.track;
  }

  /** The processed track, if an effect runs. */
  get track() {
    return this._pipeline?.track ?? null;
  }

  /** Frames processed and the time spent (for the page's own measurements). */
  get stats() {
    return this._pipeline?.stats ?? null;
  }

  /** Stop the effect and the raw camera (camera off, leaving). */
  stop() {
    this._stopPipeline();
    this.raw?.stop();
    this.raw = null;
  }

  _stopPipeline() {
    this._pipeline?.stop();
    this._pipeline = null;
  }
}

/** One raw camera track through the segmenter onto a canvas, captured as a track.
 *
 * Per frame: a snapshot of the camera (full size), the same picture scaled down to the model's input
 * width (the landscape model sees 256 pixels across whatever it is given: handing it the small picture
 * saves the upload and resize of the full frame), the mask, then the composite. The blur is done small
 * too (a Gaussian of sigma 3 % of the width is mostly low frequencies: blurred at 1/8 size and scaled up
 * it looks the same and costs a fraction, which matters where canvas filters run on the CPU).
 */
class Pipeline {
  constructor(raw, segmenter, effect, fail) {
    this.effect = effect;
    this.segmenter = segmenter;
    this.fail = fail;
    this.stopped = false;
    this.stats = { frames: 0, busyMs: 0, startedAt: performance.now() };
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.frame = document.createElement("canvas"); // the camera frame the mask belongs to
    this.small = document.createElement("canvas"); // what the model sees
    this.blurred = document.createElement("canvas"); // the background, blurred small
    const { width = 640, height = 480 } = raw.getSettings();
    this._resize(width, height);
    // Frames appear once the first one is processed, so the track never starts black.
    this.track = this.canvas.captureStream().getVideoTracks()[0];
    this.video = document.createElement("video");
    this.video.muted = true;
    this.video.playsInline = true;
    this.video.srcObject = new MediaStream([raw]);
    this.video.play().catch(() => {});
    this.video.requestVideoFrameCallback(() => this._frame());
    raw.addEventListener("ended", () => this.stop());
  }

  _resize(width, height) {
    for (const canvas of [this.canvas, this.frame]) Object.assign(canvas, { width, height });
    Object.assign(this.small, { width: MODEL_WIDTH, height: Math.round((MODEL_WIDTH * height) / width) });
    Object.assign(this.blurred, { width: Math.ceil(width / 8), height: Math.ceil(height / 8) });
  }

  async _frame() {
    if (this.stopped) return;
    const started = performance.now();
    try {
      const { video, frame, small } = this;
      if (video.videoWidth && frame.width !== video.videoWidth) this._resize(video.videoWidth, video.videoHeight);
      frame.getContext("2d").drawImage(video, 0, 0, frame.width, frame.height);
      small.getContext("2d").drawImage(frame, 0, 0, small.width, small.height);
      this.segmenter.onResults(({ segmentationMask }) => this._draw(segmentationMask));
      await this.segmenter.send({ image: small });
      this.stats.frames += 1;
      this.stats.busyMs += performance.now() - started;
    } catch (error) {
      if (!this.stopped) this.fail(`the background effect stopped: ${error?.message ?? error}`);
      return;
    }
    if (!this.stopped) this.video.requestVideoFrameCallback(() => this._frame());
  }

  _draw(mask) {
    if (this.stopped) return;
    const { ctx, canvas, frame } = this;
    const { width, height } = canvas;
    ctx.save();
    ctx.clearRect(0, 0, width, height);
    // The person: the mask's alpha (scaled up smoothly: soft edges), then the frame inside it.
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(mask, 0, 0, width, height);
    ctx.globalCompositeOperation = "source-in";
    ctx.drawImage(frame, 0, 0, width, height);
    // The background behind it.
    ctx.globalCompositeOperation = "destination-over";
    if (this.effect.mode === "image" && this.effect.image) {
      drawCover(ctx, this.effect.image, width, height);
    } else {
      const blurred = this.blurred;
      const bctx = blurred.getContext("2d");
      bctx.filter = `blur(${(BLUR_OF_WIDTH * blurred.width).toFixed(2)}px)`;
      bctx.drawImage(frame, 0, 0, blurred.width, blurred.height);
      ctx.drawImage(blurred, 0, 0, width, height);
    }
    ctx.restore();
  }

  stop() {
    this.stopped = true;
    this.track.stop();
    this.video.srcObject = null;
  }
}

/** The image scaled to cover the frame, centred, cropped (the SDK's fit_image). */
function drawCover(ctx, image, width, height) {
  const scale = Math.max(width / image.width, height / image.height);
  const w = image.width * scale;
  const h = image.height * scale;
  ctx.drawImage(image, (width - w) / 2, (height - h) / 2, w, h);
}

/** The user's stored setting: {mode, image} with the image's URL (the API's signed link) or null. */
export async function storedBackground(api) {
  try {
    const settings = await api.settings();
    const mode = settings.background?.mode ?? "none";
    return { mode, image: mode === "image" ? api.mediaUrl(settings.background_image_url) : null };
  } catch {
    return { mode: "none", image: null };
  }
}
