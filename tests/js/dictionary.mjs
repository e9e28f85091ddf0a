// Compression dictionaries in headless Chromium (Debian's): loads a page from edgeship's
// origin, waits for the test to deploy a new version of its bundle, reloads, and reports
// how the new bundle arrived. Then a fresh browser (no dictionary) loads the same page.
//
// node tests/js/dictionary.mjs BASE_URL BUNDLE_PREFIX
//   prints `ready` after the first load, waits for a line on stdin (the redeploy is done),
//   then prints one JSON line: {first, reload, fresh}, each with the bundle's URL,
//   request and response headers, encoded body size and the page's data-release.
// (playwright-core comes from the JS corpus: NODE_PATH=<corpus>/node_modules)
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");
const [base, bundlePrefix] = process.argv.slice(2);
const problems = [];

async function browser() {
  return chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "edgeship-chromium-")), {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// Loads (or reloads) the page and describes how the bundle arrived.
async function load(page, reload) {
  const bundles = [];
  const onResponse = async (response) => {
    if (!response.url().startsWith(`${base}${bundlePrefix}`)) return;
    const request = response.request();
    bundles.push({
      url: response.url(),
      status: response.status(),
      request: await request.allHeaders(),
      response: await response.allHeaders(),
      sizes: await request.sizes(),
      body: (await response.body()).length,
    });
  };
  page.on("response", onResponse);
  const answer = reload ? await page.reload({ waitUntil: "load" }) : await page.goto(`${base}/`, { waitUntil: "load" });
  if (answer.status() !== 200) problems.push(`the page answered ${answer.status()}`);
  await page.waitForFunction(() => document.documentElement.dataset.release, null, { timeout: 15000 });
  const release = await page.evaluate(() => document.documentElement.dataset.release);
  // Let late responses finish being recorded.
  await page.waitForTimeout(300);
  page.off("response", onResponse);
  return { release, bundles };
}

const returning = await browser();
let result;
try {
  const page = returning.pages()[0] ?? (await returning.newPage());
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  const first = await load(page, false);
  // Chromium stores dictionaries after the response completes; give it a moment.
  await page.waitForTimeout(500);
  console.log("ready");
  const lines = createInterface({ input: process.stdin });
  for await (const _ of lines) break;
  const reload = await load(page, true);
  const fresh = await browser();
  try {
    const freshPage = fresh.pages()[0] ?? (await fresh.newPage());
    result = { first, reload, fresh: await load(freshPage, false), problems };
  } finally {
    await fresh.close();
  }
} finally {
  await returning.close();
}
console.log(JSON.stringify(result));
process.exit(0);
