// Runs the Cloudflare Worker written by `edgeship edge-rules --for cloudflare` in workerd
// (through miniflare), with an R2 bucket holding a copy of a site's stored objects, on a
// loopback port: what tests/edge_rules.rs sends its requests to.
//
//   node tests/js/edge-worker.mjs WORKER_JS SITE_DIR BINDING [PREFIX]
//
// Prints `ready <url>` once the bucket is filled and the Worker listens, then serves until
// its standard input closes. `.edgeship/meta/` (the local provider's sidecars) is not
// copied: R2 keeps an object's metadata with it.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { createRequire } from "node:module";

// miniflare comes from the JS corpus (scripts/setup-js-corpus), found through NODE_PATH.
const require = createRequire(import.meta.url);
const { Miniflare } = require("miniflare");

const [workerPath, siteDir, binding, prefix = ""] = process.argv.slice(2);
if (!workerPath || !siteDir || !binding) {
  console.error("usage: edge-worker.mjs WORKER_JS SITE_DIR BINDING [PREFIX]");
  process.exit(2);
}

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

const mf = new Miniflare({
  modules: true,
  script: readFileSync(workerPath, "utf8"),
  compatibilityDate: "2024-09-23",
  r2Buckets: [binding],
  host: "127.0.0.1",
  port: 0,
});
const url = await mf.ready;
const bucket = await mf.getR2Bucket(binding);
let count = 0;
for (const path of files(siteDir)) {
  const key = relative(siteDir, path).split(sep).join("/");
  if (key.startsWith(".edgeship/meta/")) continue;
  const bytes = readFileSync(path);
  // A plain ArrayBuffer: miniflare's bridge refuses views into Node's pooled buffers.
  await bucket.put(prefix + key, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  count++;
}
console.log(`ready ${url.href.replace(/\/$/, "")} ${count}`);
process.stdin.resume();
process.stdin.on("end", async () => {
  await mf.dispose();
  process.exit(0);
});
