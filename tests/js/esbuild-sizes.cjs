#!/usr/bin/env node
// Baseline sizes from esbuild (the peer minifier) for every tests/js/libraries.json entry.
//
// Usage: node tests/js/esbuild-sizes.cjs [--corpus DIR] [--out-dir OUT]
//   DIR defaults to $EDGESHIP_JS_CORPUS, else $HOME/.cache/edgeship-test/js-corpus
//   (install it with scripts/setup-js-corpus).
//   --out-dir OUT also writes each esbuild output to OUT/<name>.esbuild.js (or
//   .mjs for modules), e.g. to gzip it with the same compressor as edgeship's own
//   output: node's zlib level 9 is NOT byte-identical to `gzip -9` or flate2
//   (about 0.5-1.5% larger on these files), so only compare gzip sizes made by
//   the same implementation.
//
// stdout: one JSON object
//   { "<name>": { "original": bytes, "esbuild": bytes, "esbuild_gzip9": bytes }, ... }
// in libraries.json order. "esbuild" is the UTF-8 byte length of
// esbuild.transformSync(src, { minify: true, loader: 'js', format }) where format
// is kept as-is (unset for "script" entries: no wrapping, no conversion; 'esm' for
// "module" entries, which is what they already are). "esbuild_gzip9" is the length
// of zlib.gzipSync(output, { level: 9 }). esbuild warnings go to stderr.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { createRequire } = require('node:module');

function usage(msg) {
  if (msg) process.stderr.write(`esbuild-sizes: ${msg}\n`);
  process.stderr.write('usage: node tests/js/esbuild-sizes.cjs [--corpus DIR]\n');
  process.exit(2);
}

let corpus = process.env.EDGESHIP_JS_CORPUS || path.join(os.homedir(), '.cache', 'edgeship-test', 'js-corpus');
let outDir = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--corpus' && i + 1 < argv.length) corpus = argv[++i];
  else if (argv[i].startsWith('--corpus=')) corpus = argv[i].slice('--corpus='.length);
  else if (argv[i] === '--out-dir' && i + 1 < argv.length) outDir = argv[++i];
  else if (argv[i].startsWith('--out-dir=')) outDir = argv[i].slice('--out-dir='.length);
  else usage(`unexpected argument ${argv[i]}`);
}
if (outDir) fs.mkdirSync(outDir, { recursive: true });
corpus = path.resolve(corpus);
if (!fs.existsSync(path.join(corpus, 'node_modules'))) {
  usage(`JS corpus not installed at ${corpus} (run scripts/setup-js-corpus)`);
}

const esbuild = createRequire(path.join(corpus, 'package.json'))('esbuild');
const libs = JSON.parse(fs.readFileSync(path.join(__dirname, 'libraries.json'), 'utf8'));

const result = {};
for (const lib of libs) {
  const file = path.join(corpus, lib.file);
  const src = fs.readFileSync(file, 'utf8');
  const out = esbuild.transformSync(src, {
    minify: true,
    loader: 'js',
    format: lib.mode === 'module' ? 'esm' : undefined,
    sourcefile: lib.file,
    logLevel: 'silent',
  });
  for (const w of out.warnings) {
    process.stderr.write(`esbuild-sizes: ${lib.name}: warning: ${w.text}\n`);
  }
  const code = Buffer.from(out.code, 'utf8');
  if (outDir) fs.writeFileSync(path.join(outDir, `${lib.name}.esbuild.${lib.mode === 'module' ? 'mjs' : 'js'}`), code);
  result[lib.name] = {
    original: fs.statSync(file).size,
    esbuild: code.length,
    esbuild_gzip9: zlib.gzipSync(code, { level: 9 }).length,
  };
}
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
