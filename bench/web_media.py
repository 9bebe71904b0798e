"""``python -m bench.web_media [--rounds N] [--seconds S] [--mib M]``: the browser client's media work.

1. Background effect (web/js/background.js) on Chromium's fake camera at 640x480, against the raw camera
   in the same run: each phase plays one track in a <video> for S seconds ("raw": the camera itself;
   "blur", "image": the effect's output), interleaved round by round so a neighbour's load hits them
   alike. CPU is every Chromium process's (renderer, GPU/SwiftShader, browser: ``/proc``), per frame
   delivered, and the frame rate each keeps.
2. Recording upload (web/js/recording-upload.js: IndexedDB, API start, presigned part PUTs, complete)
   against plain ``fetch`` PUTs of the same bytes to the presigned part URLs of another upload, on the
   local stack (moto's S3): MB/s of each and the ratio.

Headless Chromium with --disable-gpu renders WebGL (MediaPipe) in software: the effect's cost here is an
upper bound of what a machine with a GPU pays. Results go to the terminal and bench/results/web_media.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, proc_cpu_seconds
from local_stack import LocalStack
from local_stack.stack import MANY_USERS_FROM_ONE_ADDRESS
from tests.browser.harness import CHROMIUM, FLAGS

# In the page: set up one track playing in a <video> (camera, effect, model loaded and warm).
_SETUP_JS = """async (mode) => {
  const { CameraEffect } = await import(new URL("js/background.js", document.baseURI).href);
  const stream = await navigator.mediaDevices.getUserMedia(
    { video: { width: 640, height: 480, frameRate: 30 } });
  const raw = stream.getVideoTracks()[0];
  const { width, height } = raw.getSettings();
  const effect = new CameraEffect();
  if (mode === "image") {
    const c = new OffscreenCanvas(640, 480); const g = c.getContext("2d");
    g.fillStyle = "#2a7"; g.fillRect(0, 0, 640, 480);
    await effect.configure("image", await c.convertToBlob({ type: "image/png" }));
  } else if (mode === "blur") await effect.configure("blur");
  const track = await effect.apply(raw);
  const video = document.createElement("video");
  video.muted = true; video.srcObject = new MediaStream([track]); document.body.append(video);
  await video.play();
  await new Promise((r) => setTimeout(r, 1500)); // warm: the model's first frames
  window.__phase = { raw, effect, track, video, width, height };
}"""

# In the page: count the frames the <video> presents for `seconds`, then tear the phase down.
_MEASURE_JS = """async (seconds) => {
  const { raw, effect, track, video, width, height } = window.__phase;
  let frames = 0; let on = true;
  const count = () => { frames++; if (on) video.requestVideoFrameCallback(count); };
  video.requestVideoFrameCallback(count);
  const started = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  on = false;
  const wall = (performance.now() - started) / 1000;
  effect.stop(); track.stop(); raw.stop(); video.remove();
  return { frames, wall, width, height };
}"""

# In the page, signed in and admitted to a meeting: our upload vs plain PUTs of the same bytes.
_UPLOAD_JS = """async ([meetingId, mib, ours]) => {
  const store = await import(new URL("js/recording-store.js", document.baseURI).href);
  const { uploadRecording } = await import(new URL("js/recording-upload.js", document.baseURI).href);
  const api = window.meetup.api;
  const pieces = [];
  for (let i = 0; i < mib * 16; i++) pieces.push(crypto.getRandomValues(new Uint8Array(65536)));
  const blob = new Blob(pieces, { type: "video/webm" });
  if (ours) {
    const row = { localId: crypto.randomUUID(), meetingId, filename: "bench.webm", contentType: "video/webm",
      state: "recorded", recordingId: null, size: blob.size, error: null };
    await store.saveRecording(row);
    const chunk = 1 << 20;
    for (let i = 0; i * chunk < blob.size; i++) {
      await store.addChunk(row.localId, i, blob.slice(i * chunk, (i + 1) * chunk));
    }
    const t = performance.now();
    let putStart = null, putEnd = null;
    const onProgress = (sent, total) => {
      if (putStart === null) putStart = performance.now();
      if (sent === total) putEnd = performance.now();
    };
    await uploadRecording(api, row, { onProgress });
    const seconds = (performance.now() - t) / 1000;
    return { bytes: blob.size, seconds, put_seconds: (putEnd - putStart) / 1000 };
  }
  const base = `/meetings/${meetingId}/recordings`;
  const plan = await api.request("POST", base,
    { body: { filename: "plain.webm", content_type: "video/webm", size: blob.size } });
  const t = performance.now();
  for (const part of plan.pending) {
    const start = (part.part_number - 1) * plan.part_size;
    const response = await fetch(part.url, { method: "PUT", body: blob.slice(start, start + part.size) });
    if (!response.ok) throw new Error(`PUT ${response.status}`);
  }
  const seconds = (performance.now() - t) / 1000;
  await api.request("POST", `${base}/${plan.recording_id}/abort`);
  return { bytes: blob.size, seconds, put_seconds: seconds };
}"""


def descendants_cpu_seconds() -> float:
    """CPU seconds of this process's Chromium: every descendant whose command is Chromium's (renderer,
    GPU/SwiftShader, utility, browser), not moto's or the relays', nor anybody's on this shared machine."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
    ours, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, ppid in parents.items() if ppid in ours} - ours
        ours |= found
        grew = bool(found)
    total = 0.0
    for pid in ours - {os.getpid()}:
        try:
            if b"chromium" in Path(f"/proc/{pid}/cmdline").read_bytes():
                total += proc_cpu_seconds(pid)
        except (OSError, ValueError):
            continue
    return total


async def run(rounds: int, seconds: float, mib: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    stack = LocalStack(settings=MANY_USERS_FROM_ONE_ADDRESS).start()
    profile = tempfile.mkdtemp(prefix="bench-web-media-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            page = context.pages[0] if context.pages else await context.new_page()
            await page.goto(stack.web_url)
            email = f"bench-{secrets.token_hex(4)}@example.com"
            meeting_id = await page.evaluate(
                """async (email) => { const api = window.meetup.api;
                await api.register(email, "bench-password-1", "Bench");
                const m = await api.createMeeting({ title: "bench" });
                await api.joinMeeting(m.meeting_id); return m.meeting_id; }""",
                email,
            )
            phases: dict[str, list[dict[str, float]]] = {"raw": [], "blur": [], "image": []}
            for _ in range(rounds):
                for mode in phases:
                    await page.evaluate(_SETUP_JS, mode if mode != "raw" else "none")
                    cpu = descendants_cpu_seconds()
                    result = await page.evaluate(_MEASURE_JS, seconds)
                    result["cpu"] = descendants_cpu_seconds() - cpu
                    phases[mode].append(result)
            uploads: dict[str, list[float]] = {"ours": [], "ours_parts_only": [], "plain_put": []}
            for _ in range(rounds):
                for ours in (True, False):
                    done = await page.evaluate(_UPLOAD_JS, [meeting_id, mib, ours])
                    if ours:
                        uploads["ours"].append(done["bytes"] / done["seconds"] / 1e6)
                        uploads["ours_parts_only"].append(done["bytes"] / done["put_seconds"] / 1e6)
                    else:
                        uploads["plain_put"].append(done["bytes"] / done["seconds"] / 1e6)
            await context.close()
    finally:
        stack.stop()
    return summarise(phases, uploads, mib)


def summarise(
    phases: dict[str, list[dict[str, float]]], uploads: dict[str, list[float]], mib: int
) -> dict[str, Any]:
    effect: dict[str, Any] = {}
    for mode, runs in phases.items():
        frames = sum(r["frames"] for r in runs)
        effect[mode] = {
            # Chromium's CPU while the frames were counted (the page's other work is idle meanwhile).
            "cpu_ms_per_frame": 1000 * sum(r["cpu"] for r in runs) / max(frames, 1),
            "fps": frames / sum(r["wall"] for r in runs),
            "size": f"{int(runs[0]['width'])}x{int(runs[0]['height'])}",
        }
    for mode in ("blur", "image"):
        effect[mode]["cpu_per_frame_vs_raw"] = (
            effect[mode]["cpu_ms_per_frame"] / effect["raw"]["cpu_ms_per_frame"]
        )
    ours, plain = statistics.median(uploads["ours"]), statistics.median(uploads["plain_put"])
    parts = statistics.median(uploads["ours_parts_only"])
    upload = {
        "mib": mib,
        # End to end: IndexedDB read, the API's start (quota transaction, S3 multipart), the PUTs, complete.
        "ours_mb_s": ours,
        # The part PUTs alone, from the first to the last progress report.
        "ours_parts_only_mb_s": parts,
        "plain_put_mb_s": plain,
        "ours_vs_plain": ours / plain,
        "ours_parts_only_vs_plain": parts / plain,
    }
    return {"background": effect, "upload": upload, "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--mib", type=int, default=24)
    args = parser.parse_args()
    results = asyncio.run(run(args.rounds, args.seconds, args.mib))
    print(json.dumps(results, indent=2))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "web_media.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
