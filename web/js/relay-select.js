/**
 * Pick the nearest relay: time a few requests to each candidate's /healthz, fastest first.
 *
 * The API ranks relays by region already; this makes the final pick from what the browser measures, as
 * the Python SDK does (client_sdk/relay_select.py). The relays send no CORS headers, so the probes are
 * `no-cors`: the timing is real but the answer is opaque, so a draining relay (503) still looks alive
 * here; it refuses the join itself and the next candidate is tried.
 */

/** "ws://host:port/ws" -> "http://host:port/healthz" (wss -> https). */
export function healthUrl(relayUrl) {
  const url = new URL(relayUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = "/healthz";
  url.search = "";
  return url.href;
}

async function probe(relayUrl, samples = 3, timeoutMs = 1500) {
  const rtts = [];
  for (let i = 0; i < samples; i++) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const started = performance.now();
    try {
      await fetch(healthUrl(relayUrl), { mode: "no-cors", cache: "no-store", signal: controller.signal });
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
    rtts.push(performance.now() - started);
  }
  rtts.sort((a, b) => a - b);
  return rtts[Math.floor(rtts.length / 2)];
}

/** [{url, region}] -> the reachable ones with `rttMs`, lowest first; the API's order if none answers. */
export async function rankRelays(relays, budgetMs = 2000) {
  const budget = new Promise((resolve) => setTimeout(() => resolve(null), budgetMs));
  const rtts = await Promise.all(relays.map((relay) => Promise.race([probe(relay.url), budget])));
  const reachable = relays
    .map((relay, i) => ({ ...relay, rttMs: rtts[i] }))
    .filter((relay) => relay.rttMs !== null)
    .sort((a, b) => a.rttMs - b.rttMs);
  return reachable.length ? reachable : relays.map((relay) => ({ ...relay, rttMs: null }));
}
