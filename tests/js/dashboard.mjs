// Opens edgeship's /dashboard in headless Chromium (Debian's), enters a key, waits for the
// charts and checks them: exits 1 when the page logs a JS error, a request fails, or a
// chart or table has no data. Saves a screenshot.
//
// node tests/js/dashboard.mjs BASE_URL KEY SCREENSHOT.png
// (playwright-core comes from the JS corpus: NODE_PATH=<corpus>/node_modules)
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");
const [base, key, screenshot] = process.argv.slice(2);
const problems = [];

const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "edgeship-chromium-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1200, height: 1400 },
});
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => { if (msg.type() === "error") problems.push(`console error: ${msg.text()}`); });
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  page.on("request", (req) => { if (!req.url().startsWith(base)) problems.push(`external request: ${req.url()}`); });
  const response = await page.goto(`${base}/dashboard`);
  if (response.status() !== 200) problems.push(`/dashboard answered ${response.status()}`);
  await page.fill("#key", key);
  await page.click("#key-form button[type=submit]");
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  if (page.url().includes(key)) problems.push("the key is in the URL");
  const charts = await page.$$eval("svg.chart", (svgs) => svgs.map((s) => [s.id, Number(s.dataset.points || 0)]));
  for (const [id, points] of charts) if (points === 0) problems.push(`chart ${id} has no data points`);
  const rows = await page.$$eval("#top-paths tbody tr", (r) => r.length);
  if (rows === 0) problems.push("the top-paths table is empty");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ charts, rows, problems }));
} finally {
  await browser.close();
}
process.exit(problems.length ? 1 : 0);
