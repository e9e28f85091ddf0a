// Plays CloudFront for the function written by `edgeship edge-rules --for cloudfront`:
// for each request, runs the function as the viewer-request handler, fetches the URI it
// leaves from the S3 origin (moto) as CloudFront would (bytes as stored, no decoding),
// runs the function as the viewer-response handler, and reports what the viewer gets.
//
//   node tests/js/edge-cloudfront.mjs FUNCTION_JS ORIGIN_URL < requests.json
//
// requests.json: [{ "uri": "/assets/app.js", "headers": { "accept-encoding": "br" } }, ...]
// Output, one JSON document: [{ "status", "headers": {name: value}, "body": base64,
// "origin_uri" }, ...]. ORIGIN_URL is the bucket's path-style URL (http://host:port/bucket).
import { readFileSync } from "node:fs";
import http from "node:http";

const [functionPath, origin] = process.argv.slice(2);
const code = readFileSync(functionPath, "utf8");
if (Buffer.byteLength(code) > 10 * 1024) {
  console.error(`the function is ${Buffer.byteLength(code)} bytes, over CloudFront's 10 KB`);
  process.exit(1);
}
const handler = new Function(`${code}\nreturn handler;`)();

// CloudFront reaches a private bucket through Origin Access Control, which signs each
// request (SigV4). moto does not check signatures but refuses anonymous reads: a signed
// shape is enough here.
const SIGNED = {
  authorization:
    "AWS4-HMAC-SHA256 Credential=edgeship-test/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
};

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: SIGNED }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

const requests = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const r of requests) {
  const headers = {};
  for (const [name, value] of Object.entries(r.headers || {})) headers[name.toLowerCase()] = { value };
  const request = { method: "GET", uri: r.uri, querystring: {}, headers, cookies: {} };
  const viewer = { ip: "127.0.0.1" };
  const first = handler({ version: "1.0", context: { eventType: "viewer-request" }, viewer, request });
  if (first.statusCode !== undefined) {
    out.push({ status: first.statusCode, headers: {}, body: "", origin_uri: null });
    continue;
  }
  const fetched = await get(origin + first.uri);
  const responseHeaders = {};
  for (const [name, value] of Object.entries(fetched.headers)) responseHeaders[name] = { value: String(value) };
  const response = { statusCode: fetched.status, statusDescription: "", headers: responseHeaders, cookies: {} };
  const final = handler({ version: "1.0", context: { eventType: "viewer-response" }, viewer, request: first, response });
  const flat = {};
  for (const [name, header] of Object.entries(final.headers)) flat[name] = header.value;
  out.push({ status: final.statusCode, headers: flat, body: fetched.body.toString("base64"), origin_uri: first.uri });
}
process.stdout.write(JSON.stringify(out));
