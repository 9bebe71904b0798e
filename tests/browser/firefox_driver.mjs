// Drive Debian's Firefox ESR over WebDriver BiDi (puppeteer-core, which never downloads a browser) for the
// Python browser tests (tests/browser/firefox.py). One page per driver process.
//
// Protocol: JSON lines. The first line on stdin is the launch options {executablePath, profile, prefs};
// every later line is a request {id, op, ...}, answered on stdout by {id, ok: true, value} or
// {id, ok: false, error}. Page errors and console errors come unasked as {event: "pageerror" | "console",
// text}. stdin EOF (or a "close" request) closes Firefox and ends the process.
//
// Ops: goto {url}; evaluate {js, arg}; wait_for_function {js, arg, timeout}; wait_for_selector {selector,
// timeout}; click {selector}; fill {selector, value}; select {selector, value}; text_content {selector};
// count {selector}; screenshot {path}; close.
//
// `js` is what Playwright's page.evaluate takes: a function's source (called with `arg`) or an expression.
import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

/** A page-side expression that evaluates `js` (a function's source, called with `arg`, or an expression). */
function expression(js, arg) {
  return `(async () => { const f = (${js}); return typeof f === "function" ? await f(${JSON.stringify(
    arg ?? null,
  )}) : f; })()`;
}

async function launch(options) {
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: options.executablePath,
    headless: true,
    userDataDir: options.profile,
    extraPrefsFirefox: options.prefs ?? {},
    protocolTimeout: 60_000,
  });
  const pages = await browser.pages();
  const page = pages[0] ?? (await browser.newPage());
  await page.setViewport({ width: 1280, height: 720 });
  page.on("pageerror", (error) => send({ event: "pageerror", text: String(error?.message ?? error) }));
  page.on("console", (msg) => {
    if (msg.type() === "error") send({ event: "console", text: msg.text() });
  });
  page.on("dialog", (dialog) => dialog.accept()); // the page's confirm() (end the meeting): yes
  return { browser, page };
}

async function handle(page, request) {
  switch (request.op) {
    case "goto":
      await page.goto(request.url, { waitUntil: "load" });
      return null;
    case "evaluate":
      return await page.evaluate(expression(request.js, request.arg));
    case "wait_for_function": {
      const handle = await page.waitForFunction(expression(request.js, request.arg), {
        timeout: request.timeout,
        polling: 100,
      });
      return await handle.jsonValue();
    }
    case "wait_for_selector":
      await page.waitForSelector(request.selector, { timeout: request.timeout });
      return null;
    case "click":
      await page.click(request.selector);
      return null;
    case "fill":
      await page.$eval(request.selector, (el) => {
        el.value = "";
      });
      await page.type(request.selector, request.value);
      return null;
    case "select":
      return await page.select(request.selector, request.value);
    case "text_content":
      return await page.$eval(request.selector, (el) => el.textContent);
    case "count":
      return (await page.$$(request.selector)).length;
    case "screenshot":
      await page.screenshot({ path: request.path });
      return null;
    default:
      throw new Error(`unknown op ${JSON.stringify(request.op)}`);
  }
}

async function main() {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) return;
  let browser;
  let page;
  try {
    ({ browser, page } = await launch(JSON.parse(first.value)));
  } catch (error) {
    send({ id: 0, ok: false, error: `Firefox did not start: ${error?.stack ?? error}` });
    process.exit(1);
  }
  send({ id: 0, ok: true, value: await browser.version() });
  for await (const line of { [Symbol.asyncIterator]: () => lines }) {
    let request;
    try {
      request = JSON.parse(line);
    } catch {
      send({ id: null, ok: false, error: `not JSON: ${line.slice(0, 100)}` });
      continue;
    }
    if (request.op === "close") break;
    try {
      send({ id: request.id, ok: true, value: (await handle(page, request)) ?? null });
    } catch (error) {
      send({ id: request.id, ok: false, error: String(error?.message ?? error) });
    }
  }
  await browser.close().catch(() => {});
  process.exit(0);
}

main();
