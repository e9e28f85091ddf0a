#!/usr/bin/env node
// Smoke test for the JavaScript of the fixture site (assets-fixtures/site).
//
//   node tests/js/fixture-smoke.mjs <site-dir>
//
// <site-dir> is either the original fixture tree or a processed copy of it (for example the
// output of `edgeship build`, with minified JS, `.br`/`.gz`/`.zst` siblings and an
// `.edgeship/` folder, which are ignored). The script runs the site's JS for real and checks
// the results, so a minifier that changes behaviour is caught even when its output parses:
//
// - the ES modules (app + util) are copied to a temporary directory next to a
//   `package.json` with `"type": "module"` (the relative imports keep working) and loaded
//   with `import()`; their exports are called and the results compared exactly;
// - the classic scripts (vendor.min.js, legacy.js) run in a `node:vm` context with a small
//   fake `window`/`document`, the way a page loads them: their top-level names must be
//   globals, constructors must work with `new`, getters/setters must stay accessors,
//   `arguments`, `this` and `fn.length` must mean what they meant;
// - the inline <script> blocks of the HTML pages run against those globals.
//
// Prints one line per check; exits 1 if any check failed, 2 on a usage error.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';

const APP = 'assets/app.3f9c2a1b.js';
const UTIL = 'assets/util.8d7e6f50.js';
const LEGACY = 'assets/legacy.js';
const VENDOR = 'assets/vendor.min.js';
const MAP = 'assets/app.3f9c2a1b.js.map';
const PAGES = ['index.html', 'about/index.html', 'blog/index.html', 'blog/hello-world/index.html'];
const KNOWN_JS = new Set([APP, UTIL, LEGACY, VENDOR]);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

let passed = 0;
const failures = [];

function describeError(error) {
  if (error instanceof assert.AssertionError) {
    const first = error.message.split('\n')[0].replace(/:$/, '');
    // assert.ok(cond, message): the message says it all.
    if (!error.generatedMessage && error.operator === '==') return first;
    const detail = error.generatedMessage ? '' : `${first}: `;
    return `${detail}expected ${inspectValue(error.expected)}, got ${inspectValue(error.actual)}`;
  }
  if (error && typeof error === 'object' && 'message' in error) {
    return `${error.name ?? 'Error'}: ${error.message}`;
  }
  return String(error);
}

function inspectValue(value) {
  if (typeof value === 'string') {
    const text = JSON.stringify(value);
    return text.length > 240 ? `${text.slice(0, 150)} … ${text.slice(-70)} (${value.length} chars)` : text;
  }
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return `[function ${value.name || '(anonymous)'}]`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

let running = null;

async function check(name, fn) {
  running = name;
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
    return true;
  } catch (error) {
    failures.push({ name, error });
    console.log(`FAIL ${name}: ${describeError(error)}`);
    return false;
  } finally {
    running = null;
  }
}

// An exception thrown from a timer or an unawaited promise (e.g. a callback that lost its
// `this`) is a failure too, reported against the check that was running.
function asyncFailure(kind) {
  return (error) => {
    const name = `${kind} while running "${running ?? 'between checks'}"`;
    failures.push({ name, error });
    console.log(`FAIL ${name}: ${describeError(error)}`);
    process.exitCode = 1;
  };
}
process.on('uncaughtException', asyncFailure('uncaught exception'));
process.on('unhandledRejection', asyncFailure('unhandled rejection'));

/** Runs `fn` and returns the error it throws (or fails if it does not throw). */
async function thrown(fn) {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  assert.fail('expected an exception, none was thrown');
}

function accessor(object, key) {
  let target = object;
  while (target) {
    const desc = Object.getOwnPropertyDescriptor(target, key);
    if (desc) return desc;
    target = Object.getPrototypeOf(target);
  }
  return undefined;
}

function assertGetter(object, key, { setter = false } = {}) {
  const desc = accessor(object, key);
  assert.ok(desc, `property "${String(key)}" is missing`);
  const found = 'value' in desc ? `a plain ${typeof desc.value} property` : 'an accessor without a getter';
  assert.ok(typeof desc.get === 'function', `"${String(key)}" must be a getter, found ${found}`);
  if (setter) assert.ok(typeof desc.set === 'function', `"${String(key)}" must have a setter`);
}

const GENERATOR_PROTO = Object.getPrototypeOf(function* () {});
const ASYNC_GENERATOR_PROTO = Object.getPrototypeOf(async function* () {});

/** A constructor that is not an arrow function: has a prototype and works with `new`. */
function assertConstructible(fn, label) {
  assert.equal(typeof fn, 'function', `${label} is not a function`);
  assert.ok(Object.prototype.hasOwnProperty.call(fn, 'prototype'), `${label} has no prototype (arrow function?)`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (value) => JSON.stringify(value);

// ---------------------------------------------------------------------------------------
// A minimal fake DOM (only what the fixture scripts use)
// ---------------------------------------------------------------------------------------

class FakeClassList {
  constructor(element) {
    this.element = element;
  }
  get #list() {
    return this.element.className.split(/\s+/).filter(Boolean);
  }
  add(...names) {
    const list = this.#list;
    for (const n of names) if (!list.includes(n)) list.push(n);
    this.element.className = list.join(' ');
  }
  remove(...names) {
    this.element.className = this.#list.filter((n) => !names.includes(n)).join(' ');
  }
  contains(name) {
    return this.#list.includes(name);
  }
}

class FakeElement {
  constructor(tagName, attributes = {}, children = []) {
    this.tagName = tagName.toUpperCase();
    this.attributes = new Map(Object.entries(attributes));
    this.children = children;
    this.className = attributes.class ?? '';
    this.textContent = '';
    this.value = '';
    this.listeners = {};
    this.classList = new FakeClassList(this);
  }
  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }
  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }
  hasAttribute(name) {
    return this.attributes.has(name);
  }
  addEventListener(type, handler) {
    (this.listeners[type] ??= []).push(handler);
  }
  dispatch(type, extra = {}) {
    const event = { type, target: this, currentTarget: this, ...extra };
    for (const handler of this.listeners[type] ?? []) handler.call(this, event);
  }
  *descendants() {
    for (const child of this.children) {
      yield child;
      yield* child.descendants();
    }
  }
  querySelectorAll(selector) {
    const attr = /^\[([\w-]+)\]$/.exec(selector);
    const tag = /^[a-z][a-z0-9]*$/i.test(selector) ? selector.toUpperCase() : null;
    if (!attr && !tag) throw new Error(`fake DOM: unsupported selector ${JSON.stringify(selector)}`);
    return [...this.descendants()].filter((el) => (attr ? el.hasAttribute(attr[1]) : el.tagName === tag));
  }
  querySelector(selector) {
    return this.querySelectorAll(selector)[0] ?? null;
  }
}

function fakeDocument() {
  const el = (tag, attrs, children) => new FakeElement(tag, attrs, children);
  const slides = (n) => Array.from({ length: n }, () => el('figure'));
  const body = el('body', {}, [
    el('input', { 'data-search': '' }),
    el('button', { 'data-theme-toggle': '' }),
    el('article', { 'data-sku': 'NW-1001' }),
    el('article', { 'data-sku': 'NW-2040' }),
    el('div', { 'data-carousel': 'workshop-photos' }, slides(3)),
    el('div', { 'data-carousel': 'bench-photos' }, slides(2)),
    el('small', { 'data-legacy-year': '' }),
  ]);
  const root = el('html', { lang: 'en' }, [el('head'), body]);
  const listeners = {};
  return {
    documentElement: root,
    body,
    readyState: 'complete',
    cookie: 'theme=dark; cart=NW-1001%2CNW-2040; flag',
    querySelectorAll: (s) => root.querySelectorAll(s),
    querySelector: (s) => root.querySelector(s),
    addEventListener: (type, handler) => (listeners[type] ??= []).push(handler),
    createElement: (tag) => el(tag),
  };
}

/** A fresh browser-like global for classic scripts: window === self === this. */
function pageContext(location = { pathname: '/', search: '', href: 'https://northwind-trail.example/' }) {
  const document = fakeDocument();
  const context = vm.createContext({ document, location, console });
  vm.runInContext('var window = this; var self = this;', context);
  return { context, document };
}

function runClassic(context, code, filename) {
  vm.runInContext(code, context, { filename });
}

// ---------------------------------------------------------------------------------------
// Site discovery
// ---------------------------------------------------------------------------------------

function listFiles(root) {
  const out = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === '.edgeship') continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push(relative(root, full).split(sep).join('/'));
    }
  };
  walk(root);
  return out.sort();
}

function inlineScripts(htmlText) {
  const scripts = [];
  const re = /<script\b([^>]*)>([\s\S]*?)<\/script>/gi;
  let m;
  while ((m = re.exec(htmlText))) {
    const attrs = m[1];
    if (/\bsrc\s*=/.test(attrs)) continue;
    const type = /\btype\s*=\s*["']?([^"'\s>]+)/i.exec(attrs)?.[1];
    if (type && !/^(text|application)\/javascript$/i.test(type)) continue;
    if (m[2].trim()) scripts.push(m[2]);
  }
  return scripts;
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

const siteArg = process.argv[2];
if (!siteArg || process.argv.length > 3 || siteArg === '-h' || siteArg === '--help') {
  console.error('usage: node tests/js/fixture-smoke.mjs <site-dir>');
  process.exit(2);
}
const site = resolve(siteArg);
if (!existsSync(site) || !statSync(site).isDirectory()) {
  console.error(`fixture-smoke: ${siteArg} is not a directory`);
  process.exit(2);
}
console.log(`# fixture smoke test on ${site}`);

const read = (rel) => readFileSync(join(site, rel), 'utf8');
const files = listFiles(site);

await check('site has every JS fixture the checks need', () => {
  const missing = [...KNOWN_JS, MAP, ...PAGES].filter((f) => !files.includes(f));
  assert.deepEqual(missing, [], `missing: ${missing.join(', ')}`);
});

// Any other .js file still has to load: classic scripts compile, modules are imported below.
const otherJs = files.filter((f) => /\.(m?js|cjs)$/.test(f) && !KNOWN_JS.has(f));
for (const rel of otherJs) {
  await check(`${rel}: compiles (no behaviour checks for this file)`, () => {
    const code = read(rel);
    try {
      new vm.Script(code, { filename: rel });
    } catch (error) {
      if (!/import|export|module/i.test(error.message)) throw error;
      // An ES module: compile it as one.
      if (typeof vm.SourceTextModule === 'function') new vm.SourceTextModule(code);
    }
  });
}

// --- source-level guarantees of the pipeline ------------------------------------------

await check(`${APP}: ends with its sourceMappingURL comment`, () => {
  const lines = read(APP).trimEnd().split('\n');
  assert.equal(lines.at(-1).trim(), '//# sourceMappingURL=app.3f9c2a1b.js.map');
});

for (const [rel, needle] of [
  [APP, 'northwind-storefront app v2.8.0'],
  [UTIL, 'northwind-storefront util v2.8.0'],
  [LEGACY, 'Northwind legacy widgets v0.9.3'],
  [VENDOR, 'Qz v1.2.0'],
]) {
  await check(`${rel}: keeps its /*! license */ comment`, () => {
    const comments = read(rel).match(/\/\*![\s\S]*?\*\//g) ?? [];
    assert.ok(comments.some((c) => c.includes(needle)), `no /*! ... ${needle} ... */ comment`);
  });
}

await check(`${MAP}: is a version 3 source map for app.3f9c2a1b.js`, () => {
  const map = JSON.parse(read(MAP));
  assert.equal(map.version, 3);
  assert.equal(map.file, 'app.3f9c2a1b.js');
  assert.ok(Array.isArray(map.sources) && map.sources.length > 0, 'no sources');
  assert.equal(typeof map.mappings, 'string');
  assert.match(map.mappings, /^[A-Za-z0-9+/,;]*$/);
});

// --- ES modules -----------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'edgeship-fixture-smoke-'));
let util = null;
let app = null;
try {
  // Copy every JS file of assets/ flat, so that relative imports between them resolve.
  for (const rel of files.filter((f) => /^assets\/[^/]+\.m?js$/.test(f))) {
    copyFileSync(join(site, rel), join(work, basename(rel)));
  }
  writeFileSync(join(work, 'package.json'), '{ "type": "module" }\n');

  await check(`${UTIL}: loads as an ES module`, async () => {
    util = await import(pathToFileURL(join(work, basename(UTIL))).href);
  });
  await check(`${APP}: loads as an ES module (imports util, top-level await)`, async () => {
    app = await import(pathToFileURL(join(work, basename(APP))).href);
  });

  if (util) await utilChecks(util);
  if (app) await appChecks(app, work);
} finally {
  rmSync(work, { recursive: true, force: true });
}

// --- classic scripts ------------------------------------------------------------------

await classicChecks();

// --- summary --------------------------------------------------------------------------

const total = passed + failures.length;
if (failures.length) {
  console.log(`\n# ${failures.length} of ${total} checks FAILED on ${site}:`);
  for (const { name } of failures) console.log(`#   - ${name}`);
  process.exitCode = 1;
} else {
  console.log(`\n# all ${total} checks passed on ${site}`);
}

// =======================================================================================
// util.8d7e6f50.js
// =======================================================================================

async function utilChecks(u) {
  const U = 'util';
  await check(`${U}: exports every helper`, () => {
    const expected = ['formatBytes', 'slugify', 'clamp', 'debounce', 'memoize', 'sleep', 'retry', 'escapeHtml', 'SafeHtml', 'html', 'raw', 'dedent', 'hashString', 'byteLength', 'chunk', 'groupBy', 'pick', 'parseQuery', 'truncateMiddle', 'sumCents', 'MAX_SAFE_CENTS', 'VERSION'];
    const missing = expected.filter((name) => !(name in u));
    assert.deepEqual(missing, []);
    assert.equal(u.VERSION, '2.8.0');
  });

  await check(`${U}: formatBytes`, async () => {
    assert.equal(u.formatBytes(0), '0 B');
    assert.equal(u.formatBytes(999), '999 B');
    assert.equal(u.formatBytes(1536), '1.5 KB');
    assert.equal(u.formatBytes(1536, { binary: true }), '1.5 KiB');
    assert.equal(u.formatBytes(-2_500_000), '-2.5 MB');
    assert.equal(u.formatBytes(123456789, { decimals: 3 }), '123.457 MB');
    assert.equal(u.formatBytes(1e18), '1000.0 PB');
    const error = await thrown(() => u.formatBytes(Number.NaN));
    assert.ok(error instanceof TypeError, 'NaN must throw a TypeError');
    assert.equal(error.message, 'formatBytes: expected a finite number, got number');
  });

  await check(`${U}: slugify`, () => {
    assert.equal(u.slugify('Café Menü & Drinks!'), 'cafe-menu-and-drinks');
    assert.equal(u.slugify('  Ærlig   talt — ÅPEN  '), 'rlig-talt-apen');
    assert.equal(u.slugify('The quick brown fox jumps over the lazy dog', { maxLength: 20 }), 'the-quick-brown-fox');
    assert.equal(u.slugify('a b c', { separator: '_' }), 'a_b_c');
    assert.equal(u.slugify(null), '');
  });

  await check(`${U}: clamp swaps reversed bounds`, () => {
    assert.equal(u.clamp(15, 10, 0), 10);
    assert.equal(u.clamp(-3, 0, 10), 0);
    assert.equal(u.clamp(4, 0, 10), 4);
  });

  await check(`${U}: debounce forwards this and the last call's arguments; pending getter; flush; cancel`, async () => {
    const target = {
      calls: [],
      hit: u.debounce(function (a, b) {
        this.calls.push([a, b, arguments.length]);
        return a + b;
      }, 20),
    };
    target.hit(1, 2);
    target.hit(3, 4, 5);
    assertGetter(target.hit, 'pending');
    assert.equal(target.hit.pending, true);
    await sleep(70);
    assert.deepEqual(target.calls, [[3, 4, 3]]);
    assert.equal(target.hit.pending, false);

    const doubled = u.debounce((x) => x * 2, 10_000);
    doubled(21);
    assert.equal(doubled.flush(), 42);
    assert.equal(doubled.pending, false);

    let cancelled = 0;
    const never = u.debounce(() => cancelled++, 10);
    never();
    never.cancel();
    const leading = u.debounce((x) => `now ${x}`, 10_000, { leading: true });
    assert.equal(leading('a'), 'now a');
    assert.equal(leading('b'), 'now a');
    leading.cancel();
    await sleep(30);
    assert.equal(cancelled, 0);
  });

  await check(`${U}: memoize caches by key and forwards this`, () => {
    let calls = 0;
    const obj = {
      factor: 3,
      times: u.memoize(function (n) {
        calls++;
        return n * this.factor;
      }),
    };
    assert.equal(obj.times(2), 6);
    assert.equal(obj.times(2), 6);
    assert.equal(obj.times(5), 15);
    assert.equal(calls, 2);
    assert.ok(obj.times.cache instanceof Map);
    assert.deepEqual([...obj.times.cache.keys()], [2, 5]);
    const joined = u.memoize((a, b) => `${a}${b}`, (a, b) => `${a}|${b}`);
    assert.equal(joined('x', 'y'), 'xy');
    assert.deepEqual([...joined.cache.keys()], ['x|y']);
  });

  await check(`${U}: sleep and retry (async, back-off, retryable=false stops)`, async () => {
    assert.equal(await u.sleep(1, 'slept'), 'slept');
    const seen = [];
    const result = await u.retry(
      async (attempt) => {
        if (attempt < 2) throw Object.assign(new Error(`try ${attempt}`), { retryable: true });
        return `done after ${attempt}`;
      },
      { retries: 3, delay: 1, onRetry: (error, attempt) => seen.push(`${attempt}:${error.message}`) },
    );
    assert.equal(result, 'done after 2');
    assert.deepEqual(seen, ['0:try 0', '1:try 1']);
    let tries = 0;
    const fatal = await thrown(() =>
      u.retry(async () => {
        tries++;
        throw Object.assign(new Error('bad request'), { retryable: false });
      }, { delay: 1 }),
    );
    assert.equal(fatal.message, 'bad request');
    assert.equal(tries, 1);
  });

  await check(`${U}: escapeHtml`, () => {
    assert.equal(u.escapeHtml(`<a href="x">'Tom' & Jerry</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;Tom&#39; &amp; Jerry&lt;/a&gt;');
    assert.equal(u.escapeHtml(42), '42');
  });

  await check(`${U}: html tag escapes values; SafeHtml toString and Symbol.toStringTag getter`, () => {
    const out = u.html`<p title="${'"q"'}">${'<b>'} ${['a', u.html`<i>b</i>`]} ${null}${false}${0}</p>`;
    assert.ok(out instanceof u.SafeHtml);
    assert.equal(String(out), '<p title="&quot;q&quot;">&lt;b&gt; a<i>b</i> 0</p>');
    assert.equal(Object.prototype.toString.call(out), '[object SafeHtml]');
    assertGetter(u.SafeHtml.prototype, Symbol.toStringTag);
    assertGetter(u.html, 'templateCount');
    assert.equal(typeof u.html.templateCount, 'number');
  });

  await check(`${U}: raw and dedent tags`, () => {
    assert.equal(u.raw`a\nb${1}\t`, 'a\\nb1\\t');
    assert.equal(u.dedent`
      first
        second ${'x'}
      third
    `, 'first\n  second x\nthird');
  });

  await check(`${U}: hashString (FNV-1a) and byteLength`, () => {
    assert.equal(u.hashString(''), '811c9dc5');
    assert.equal(u.hashString('a'), 'e40c292c');
    assert.equal(u.hashString('café'), 'a82b5049');
    assert.equal(u.byteLength('café'), 5);
    assert.equal(u.byteLength('🌲'), 4);
  });

  await check(`${U}: chunk is a generator function`, () => {
    assert.equal(Object.getPrototypeOf(u.chunk), GENERATOR_PROTO, 'chunk is no longer a generator function');
    assert.deepEqual([...u.chunk([1, 2, 3, 4, 5], 2)], [[1, 2], [3, 4], [5]]);
    const iterator = u.chunk([1], 0);
    assert.throws(() => iterator.next(), RangeError);
  });

  await check(`${U}: groupBy, pick, parseQuery`, () => {
    const groups = u.groupBy([{ t: 'a', n: 1 }, { t: 'b', n: 2 }, { t: 'a', n: 3 }], 't');
    assert.ok(groups instanceof Map);
    assert.equal(json([...groups]), '[["a",[{"t":"a","n":1},{"t":"a","n":3}]],["b",[{"t":"b","n":2}]]]');
    assert.equal(json([...u.groupBy([1, 2, 3, 4], (n) => n % 2)]), '[[1,[1,3]],[0,[2,4]]]');
    const proto = { inherited: true };
    const source = Object.assign(Object.create(proto), { a: 1, b: 2, c: 3 });
    assert.deepEqual(u.pick(source, 'a', ['c', 'inherited', 'zz']), { a: 1, c: 3 });
    const q = u.parseQuery('?a=1&a=2&b=x+y&c=%C3%A9&a=3');
    assert.equal(Object.getPrototypeOf(q), null);
    assert.equal(json(q), '{"a":["1","2","3"],"b":"x y","c":"é"}');
  });

  await check(`${U}: truncateMiddle counts code points`, () => {
    assert.equal(u.truncateMiddle('abcdefghij', 5), 'ab…ij');
    assert.equal(u.truncateMiddle('short', 10), 'short');
    assert.equal(u.truncateMiddle('🌲🌲🌲🏔️🌲🌲', 3), '🌲…🌲');
  });

  await check(`${U}: sumCents and MAX_SAFE_CENTS are BigInt`, () => {
    assert.equal(u.sumCents([9007199254740991, 2]), 9007199254740993n);
    assert.equal(u.sumCents(['10', 5n]), 15n);
    assert.equal(u.MAX_SAFE_CENTS, 9007199254740991n);
  });
}

// =======================================================================================
// app.3f9c2a1b.js
// =======================================================================================

async function appChecks(a, dir) {
  const A = 'app';
  await check(`${A}: top-level await finished, FEATURES and BASE_URL`, () => {
    assert.ok(a.FEATURES instanceof Set);
    assert.ok(a.FEATURES.has('esm'));
    assert.ok(a.BASE_URL instanceof URL);
    assert.equal(a.BASE_URL.href, pathToFileURL(dir).href + '/');
  });

  await check(`${A}: default export`, () => {
    const d = a.default;
    assert.ok(Object.isFrozen(d));
    assert.deepEqual(Object.keys(d), ['boot', 'Store', 'Cart', 'version']);
    assert.equal(d.Store, a.Store);
    assert.equal(d.version, '2.8.0');
  });

  await check(`${A}: EventBus on/emit/off/once, size getter, #private brand check`, () => {
    assertConstructible(a.EventBus, 'EventBus');
    const bus = new a.EventBus();
    const got = [];
    const handler = function (x, y) {
      got.push([this === bus, x, y]);
    };
    const unsubscribe = bus.on('ping', handler);
    bus.on('ping', (x) => got.push(['once', x]), { once: true });
    assertGetter(a.EventBus.prototype, 'size');
    assert.equal(bus.size, 2);
    assert.equal(bus.emit('ping', 1, 2), 2);
    assert.equal(bus.emit('ping', 3), 1);
    assert.equal(bus.size, 1);
    assert.equal(unsubscribe(), true);
    assert.equal(bus.emit('ping', 4), 0);
    assert.equal(json(got), '[[true,1,2],["once",1],[true,3,null]]');
    assert.equal(a.EventBus.isBus(bus), true);
    assert.equal(a.EventBus.isBus({ size: 0 }), false);
  });

  await check(`${A}: Store state getter/setter, static block, static getter, inheritance, undo`, () => {
    const before = a.Store.created;
    const store = new a.Store({ theme: 'dark' });
    assert.ok(store instanceof a.Store && store instanceof a.EventBus);
    assert.equal(a.Store.created, before + 1);
    assertGetter(a.Store, 'created');
    assertGetter(a.Store.prototype, 'state', { setter: true });
    assertGetter(a.Store.prototype, 'canUndo');
    assert.equal(json(a.Store.defaults), '{"theme":"light","currency":"USD","locale":"en-US"}');
    assert.ok(Object.isFrozen(store.state));
    assert.equal(store.state.theme, 'dark');
    const changes = [];
    store.on('change', (next, prev) => changes.push(`${prev?.theme}->${next.theme}`));
    assert.equal(store.canUndo, false);
    store.state = { theme: 'light', query: 'mug' };
    assert.equal(json(store.state), '{"theme":"light","currency":"USD","locale":"en-US","query":"mug"}');
    assert.equal(store.canUndo, true);
    assert.equal(store.undo(), true);
    assert.equal(store.state.theme, 'dark');
    assert.equal(store.undo(), false);
    assert.deepEqual(changes, ['dark->light', 'undefined->dark']);
  });

  await check(`${A}: Cart getters, coupon setter (named groups), iterator, toJSON`, () => {
    const cart = new a.Cart();
    assert.equal(cart.add({ sku: 'NW-1001', name: 'Trail Mug', priceCents: 1850, quantity: 2 }), cart);
    cart.add({ sku: 'NW-2002', name: 'Café Beanie', priceCents: 2400 }).add({ sku: 'NW-1001', name: 'Trail Mug', priceCents: 1850 });
    for (const key of ['count', 'subtotalCents', 'totalCents']) assertGetter(a.Cart.prototype, key);
    assertGetter(a.Cart.prototype, 'coupon', { setter: true });
    assert.equal(cart.count, 4);
    assert.equal(cart.subtotalCents, 7950);
    assert.equal(cart.coupon, null);
    cart.coupon = ' save-10 ';
    assert.equal(cart.coupon, 'SAVE-10');
    assert.equal(cart.totalCents, 7155);
    const bad = (() => {
      try {
        cart.coupon = 'FREE';
      } catch (error) {
        return error;
      }
      return null;
    })();
    assert.ok(bad instanceof RangeError, 'an invalid coupon throws a RangeError');
    assert.equal(bad.message, 'Invalid coupon "FREE"');
    assert.equal([...cart].map((l) => `${l.quantity}x${l.sku}`).join(' '), '3xNW-1001 1xNW-2002');
    assert.equal(
      JSON.stringify(cart),
      '{"currency":"USD","lines":[{"sku":"NW-1001","name":"Trail Mug","priceCents":1850,"quantity":3},{"sku":"NW-2002","name":"Café Beanie","priceCents":2400,"quantity":1}],"coupon":"SAVE-10","totalCents":7155}',
    );
    assert.equal(cart.remove('NW-2002'), true);
    cart.coupon = null;
    assert.equal(cart.totalCents, 5550);
    assert.throws(() => cart.add({ name: 'no sku' }), TypeError);
  });

  await check(`${A}: HttpError subclass, retryable getter, cause`, () => {
    const cause = new Error('socket hang up');
    const error = new a.HttpError(503, '/api/x', { cause });
    assert.ok(error instanceof a.HttpError && error instanceof Error);
    assert.equal(error.name, 'HttpError');
    assert.equal(error.message, 'HTTP 503 for /api/x');
    assert.equal(error.cause, cause);
    assertGetter(a.HttpError.prototype, 'retryable');
    assert.equal(error.retryable, true);
    assert.equal(new a.HttpError(404, '/x').retryable, false);
    assert.equal(new a.HttpError(429, '/x').retryable, true);
  });

  await check(`${A}: fetchJson with an injected fetch`, async () => {
    const requests = [];
    const fetchImpl = async (url, init) => {
      requests.push([url, init.headers]);
      if (url.endsWith('/down')) return { ok: false, status: 503 };
      return { ok: true, status: 200, json: async () => ({ url, n: 1 }) };
    };
    assert.deepEqual(await a.fetchJson('/data/products.json', { fetchImpl, headers: { 'x-site': 'www' } }), { url: '/data/products.json', n: 1 });
    assert.equal(json(requests[0]), '["/data/products.json",{"accept":"application/json","x-site":"www"}]');
    const error = await thrown(() => a.fetchJson('/api/down', { fetchImpl }));
    assert.ok(error instanceof a.HttpError);
    assert.equal(error.status, 503);
    const missing = await thrown(() => a.fetchJson('/x', { fetchImpl: async () => undefined }));
    assert.equal(missing.status, 0);
  });

  await check(`${A}: paginate (async generator) + collectAll (for await)`, async () => {
    assert.equal(Object.getPrototypeOf(a.paginate), ASYNC_GENERATOR_PROTO, 'paginate is no longer an async generator');
    const pages = { null: { items: [1, 2], next: 'p2' }, p2: { items: [3], next: 'p3' }, p3: { items: [4, 5], next: null } };
    const cursors = [];
    const fetchPage = async (cursor) => {
      cursors.push(cursor);
      await sleep(1);
      return pages[cursor];
    };
    assert.deepEqual(await a.collectAll(a.paginate(fetchPage)), [1, 2, 3, 4, 5]);
    assert.deepEqual(cursors, [null, 'p2', 'p3']);
    assert.deepEqual(await a.collectAll(a.paginate(fetchPage, { limit: 3 }), async (n) => n * 10), [10, 20, 30]);
    assert.deepEqual(await a.collectAll(['x', 'y']), ['x', 'y']);
    assert.deepEqual(await a.collectAll(a.paginate(async () => null)), []);
  });

  await check(`${A}: matchRoute (named groups, u flag)`, () => {
    const r = (p) => json(a.matchRoute(p));
    assert.equal(r('/'), '{"name":"home","params":{}}');
    assert.equal(r('/about'), '{"name":"about","params":{}}');
    assert.equal(r('/blog/?page=2'), '{"name":"blog","params":{}}');
    assert.equal(r('/blog/hello-world/'), '{"name":"post","params":{"slug":"hello-world"}}');
    assert.equal(r('/blog/Hello/'), '{"name":"not-found","params":{}}');
    assert.equal(r('/p/NW-1001'), '{"name":"product","params":{"sku":"NW-1001"}}');
    assert.equal(r('/p/NW-1001/blue#reviews'), '{"name":"product","params":{"sku":"NW-1001","variant":"blue"}}');
  });

  await check(`${A}: parseSearch (sticky regex, ??=)`, () => {
    assert.equal(
      json(a.parseSearch('color:"deep red" size:M jacket "rain proof" size:L')),
      '{"fields":{"color":["deep red"],"size":["M","L"]},"words":["jacket","rain proof"]}',
    );
    assert.equal(json(a.parseSearch('')), '{"fields":{},"words":[]}');
  });

  await check(`${A}: formatPrice`, () => {
    assert.equal(a.formatPrice(123450), '$1,234.50');
    assert.equal(a.formatPrice(-5, 'EUR'), '-€0.05');
  });

  await check(`${A}: renderProductCard (tagged templates, whitespace kept, call-site identity)`, () => {
    const first = a.renderProductCard({ sku: 'NW-1001', name: 'Mug <XL> & co', price: { amount: 123450 }, tags: ['a"b', 'c'], badge: 'New' });
    assert.equal(
      first,
      '<article class="card" data-sku="NW-1001">\n  <h3 class="card__title">Mug &lt;XL&gt; &amp; co</h3>\n  <p class="card__price">$1,234.50</p>\n  <span class="badge">New</span>\n  <ul class="tags"><li>a&quot;b</li><li>c</li></ul>\n</article>',
    );
    const count = util ? util.html.templateCount : null;
    const second = a.renderProductCard({ sku: 'NW-2040', name: 'Enamel Mug', price: { amount: 1850, currency: 'EUR' }, badge: 'Sale' });
    assert.equal(
      second,
      '<article class="card" data-sku="NW-2040">\n  <h3 class="card__title">Enamel Mug</h3>\n  <p class="card__price">€18.50</p>\n  <span class="badge">Sale</span>\n  <ul class="tags"></ul>\n</article>',
    );
    if (util) assert.equal(util.html.templateCount, count, 'a call site must reuse its template strings object');
    assert.equal(a.renderProductCard(null).split('\n')[0], '<article class="card" data-sku="">');
  });

  await check(`${A}: templateKey returns the same frozen strings array per call site`, () => {
    const one = a.templateKey(1);
    const two = a.templateKey(2);
    assert.ok(one === two, 'two calls of one call site gave different strings arrays');
    assert.ok(Object.isFrozen(one) && Object.isFrozen(one.raw));
    assert.deepEqual([...one], ['key:', ':end']);
  });

  await check(`${A}: renderReceipt (multi-line template literal)`, () => {
    const cart = new a.Cart();
    cart.add({ sku: 'NW-1001', name: 'Trail Mug', priceCents: 1850, quantity: 2 }).add({ sku: 'NW-2002', name: 'Café Beanie', priceCents: 2400 });
    assert.equal(
      a.renderReceipt(cart),
      'Receipt\n   2 × Trail Mug          $37.00\n   1 × Café Beanie        $24.00\n  ------------------------------\n  coupon: —\n  total:  $61.00',
    );
  });

  await check(`${A}: raw strings (windowsPath, extPattern) and dedent (bannerText)`, () => {
    assert.equal(a.windowsPath('x'), 'C:\\Users\\Public\\northwind\\cache\\x');
    const re = a.extPattern('css');
    assert.equal(re.source, '^[\\w.-]+\\.css$');
    assert.equal(re.flags, 'i');
    assert.equal(re.test('styles.5b6c7d8e.CSS'), true);
    assert.equal(re.test('app.3f9c2a1b.js.map'), false);
    assert.equal(a.bannerText, 'Northwind Trail — free shipping on orders over $75\n  (excludes oversized items)');
  });

  await check(`${A}: settings object literal getters/setters`, () => {
    const s = a.settings;
    assertGetter(s, 'theme', { setter: true });
    assertGetter(s, 'label');
    assert.equal(s.label, 'Light theme');
    s.theme = 'dark';
    assert.equal(s.theme, 'dark');
    assert.equal(s.label, 'Dark theme');
    assert.equal(s.changes, 1);
    assert.throws(() => {
      s.theme = 'sepia';
    }, RangeError);
    assert.equal(s.changes, 1);
    s.theme = 'light';
  });

  await check(`${A}: describeUpload (labels, switch fall-through)`, () => {
    const files = [
      { name: 'a.PNG', size: 2000 },
      { name: 'b.js', size: 1500 },
      { name: 'c.css', size: 10 },
      { name: 'd.txt', size: 5 },
      { name: 'e.jpg', size: 3000 },
      { name: 'f.woff2', size: -1 },
      { name: 'g.JPG', size: 500 },
    ];
    assert.equal(a.describeUpload(files), '1 CSS (10 B), 2 images (3.5 KB), 1 JS (1.5 KB), 1 image (2.0 KB), 1 other (5 B)');
  });

  await check(`${A}: readOptions (destructuring defaults, renames, rest)`, () => {
    assert.equal(json(a.readOptions('?page=3&sort=price&tag=a&tag=b&z=1&y=2')), '{"page":3,"order":"price","tags":["a","b"],"extra":["y","z"]}');
    assert.equal(json(a.readOptions('page=zero&tag=solo')), '{"page":1,"order":"featured","tags":["solo"],"extra":[]}');
    assert.equal(json(a.readOptions()), '{"page":1,"order":"featured","tags":[],"extra":[]}');
  });

  await check(`${A}: loadSlug (dynamic import of the util chunk) and cacheKey`, async () => {
    assert.equal(await a.loadSlug('Hello, Wörld'), 'hello-world');
    assert.equal(a.cacheKey('a', { b: 1 }), 'nw:a3d07a2f');
    assert.equal(a.cacheKey('a', { b: 1 }), a.cacheKey('a', { b: 1 }));
  });

  await check(`${A}: boot wires a (fake) document: route, classes, debounced input with this, theme toggle`, async () => {
    const doc = fakeDocument();
    const store = new a.Store();
    const booted = a.boot(doc, { store, location: { pathname: '/blog/hello-world/', search: '' } });
    assert.equal(json(booted.route), '{"name":"post","params":{"slug":"hello-world"}}');
    const root = doc.documentElement;
    assert.equal(root.getAttribute('data-route'), 'post');
    assert.ok(root.classList.contains('js') && root.classList.contains('has-esm'), `classes: ${root.className}`);
    const input = doc.querySelector('[data-search]');
    input.value = 'Café Menü';
    input.dispatch('input');
    input.value = 'ignored';
    input.dispatch('input', { target: { value: 'Café Menü' } });
    await sleep(120);
    assert.equal(store.state.query, 'Café Menü');
    assert.equal(input.getAttribute('data-last-query'), 'cafe-menu');
    doc.querySelector('[data-theme-toggle]').dispatch('click');
    assert.equal(root.getAttribute('data-theme'), 'dark');
    doc.querySelector('[data-theme-toggle]').dispatch('click');
    assert.equal(root.getAttribute('data-theme'), 'light');
    assert.equal(a.boot(null), null);
  });
}

// =======================================================================================
// vendor.min.js + legacy.js (classic scripts) and the pages' inline scripts
// =======================================================================================

async function classicChecks() {
  let vendorCode;
  let legacyCode;
  let page;
  const ok = await check(`${VENDOR} + ${LEGACY}: run as classic scripts in a fake window`, () => {
    vendorCode = read(VENDOR);
    legacyCode = read(LEGACY);
    page = pageContext();
    runClassic(page.context, vendorCode, VENDOR);
    runClassic(page.context, legacyCode, LEGACY);
  });
  if (!ok) return;
  const g = page.context;
  const inCtx = (code) => vm.runInContext(code, g);
  const V = 'vendor';
  const L = 'legacy';

  await check(`${V}: Qz is a global (UMD) and a constructor callable without new`, () => {
    assertConstructible(g.Qz, 'Qz');
    assert.equal(g.window.Qz, g.Qz);
    assert.equal(g.Qz.version, '1.2.0');
    const q = g.Qz('[data-sku]', page.document);
    assert.ok(q instanceof g.Qz, 'Qz() without new returns a Qz');
    assert.ok(new g.Qz([]) instanceof g.Qz);
    assert.equal(q.length, 2);
    assert.equal(g.Qz.isQz(q), true);
    assert.equal(g.Qz.isQz([]), false);
    assertGetter(g.Qz.prototype, 'first');
    assert.equal(q.first.getAttribute('data-sku'), 'NW-1001');
    assert.equal(g.Qz(null).first, null);
    assert.equal(g.Qz.fn, g.Qz.prototype);
  });

  await check(`${V}: attr() dispatches on arguments.length; each() binds this`, () => {
    const q = g.Qz('[data-sku]', page.document);
    assert.equal(q.attr('data-sku'), 'NW-1001');
    assert.equal(q.attr('data-ready', 'yes'), q);
    // Arrays made inside the vm context have that realm's prototypes: compare as JSON.
    assert.equal(json(q.toArray().map((el) => el.getAttribute('data-ready'))), '["yes","yes"]');
    const seen = [];
    q.each(function (i, el) {
      seen.push(`${i}:${this === el}`);
      return i < 0;
    });
    assert.deepEqual(seen, ['0:true']);
  });

  await check(`${V}: Qz.extend (variadic), Qz.fmt, Emitter (new-only, this, arguments)`, () => {
    assert.equal(json(g.Qz.extend({ a: 1 }, { b: 2 }, null, { a: 3, c: 4 })), '{"a":3,"b":2,"c":4}');
    assert.equal(g.Qz.fmt('{0} + {1} = {2} {3}', 1, 'two', 3), '1 + two = 3 {3}');
    assertConstructible(g.Qz.Emitter, 'Qz.Emitter');
    const e = new g.Qz.Emitter();
    const got = [];
    e.on('x', function (a, b) {
      got.push([this === e, a, b]);
    });
    assert.equal(e.emit('x', 1, 2), 1);
    assert.equal(json(got), '[[true,1,2]]');
    const err = (() => {
      try {
        g.Qz.Emitter();
      } catch (error) {
        return error;
      }
      return null;
    })();
    assert.equal(err?.name, 'TypeError', 'Emitter() without new must throw a TypeError');
  });

  await check(`${L}: top-level var/function names are globals`, () => {
    const names = ['LEGACY_BUILD', 'Legacy', 'sum', 'aliasArguments', 'sloppyThis', 'strictThis', 'legacyFormat', 'Widget', 'Modal', 'Carousel', 'Counter', 'Pipeline', 'legacyInit'];
    const missing = names.filter((n) => !Object.prototype.hasOwnProperty.call(g, n));
    assert.deepEqual(missing, [], `not on the global object: ${missing.join(', ')}`);
    assert.equal(g.LEGACY_BUILD, 'r4821');
    assert.equal(g.window.legacyInit, g.legacyInit);
    assert.equal(inCtx('typeof legacyInit === "function" && legacyInit === window.legacyInit'), true);
  });

  await check(`${L}: Legacy object-literal getters/setters`, () => {
    const Legacy = g.Legacy;
    assertGetter(Legacy, 'version');
    assertGetter(Legacy, 'debug', { setter: true });
    assertGetter(Legacy, 'eventCount');
    assert.equal(Legacy.version, '0.9.3+r4821');
    assert.equal(Legacy.debug, false);
    const before = Legacy.eventCount;
    Legacy.debug = 1;
    assert.equal(Legacy.debug, true);
    assert.equal(Legacy.eventCount, before + 1);
    assert.equal(Legacy._events.at(-1), 'log: debug on');
    Legacy.debug = false;
    assert.equal(Legacy.log('a', 1, true), 'a 1 true');
    assert.equal(Legacy.track('click', { id: 7 }), Legacy.eventCount);
  });

  await check(`${L}: arguments (variadic sum, sloppy-mode aliasing, legacyFormat)`, () => {
    assert.equal(g.sum(1, 2, 3, '4'), 10);
    assert.equal(g.sum(), 0);
    assert.equal(g.aliasArguments('original'), 'changed through arguments');
    assert.equal(g.legacyFormat('{0} is {1}, {2}', 'x', 'y'), 'x is y, {2}');
    assert.equal(g.Legacy.format, g.legacyFormat);
  });

  await check(`${L}: this in sloppy vs strict functions`, () => {
    assert.equal(inCtx('sloppyThis() === window'), true, 'a sloppy function called plainly gets the global object');
    assert.equal(inCtx('strictThis() === undefined'), true, "a 'use strict' function called plainly gets undefined");
    const { strictThis } = g;
    assert.equal(strictThis(), undefined);
    assert.equal(g.sloppyThis.call(7) instanceof inCtx('Number'), true);
    assert.equal(g.strictThis.call(7), 7);
  });

  await check(`${L}: Widget/Modal constructors, prototype chain, instanceof, defineProperty getter`, () => {
    for (const name of ['Widget', 'Modal', 'Carousel', 'Counter', 'Pipeline']) assertConstructible(g[name], name);
    const w = new g.Widget('plain');
    assert.ok(w instanceof g.Widget);
    assert.equal(w.describe(), `[widget plain#${w.id}]`);
    const noNew = (() => {
      try {
        g.Widget('x');
      } catch (error) {
        return error;
      }
      return null;
    })();
    assert.equal(noNew?.name, 'TypeError', 'Widget() without new must throw');
    const m = new g.Modal('signup', { closable: false });
    assert.ok(m instanceof g.Modal && m instanceof g.Widget);
    assert.equal(m.constructor, g.Modal);
    assert.equal(m.id, w.id + 1);
    assert.equal(m.describe(), `[modal signup#${m.id}]`);
    assertGetter(g.Modal.prototype, 'isOpen');
    assert.equal(m.isOpen, false);
    assert.equal(m.open(), m);
    assert.equal(m.isOpen, true);
    assert.equal(m.close(), false);
    const closable = new g.Modal('news');
    closable.open();
    assert.equal(closable.close(), true);
    assert.equal(closable.isOpen, false);
  });

  await check(`${L}: Carousel with and without new, current getter/setter, loop`, () => {
    const el = new FakeElement('div', { 'data-carousel': 'test' }, [new FakeElement('figure'), new FakeElement('figure'), new FakeElement('figure')]);
    const c = new g.Carousel(el);
    const d = g.Carousel(el, { loop: false });
    assert.ok(c instanceof g.Carousel && c instanceof g.Widget, 'new Carousel()');
    assert.ok(d instanceof g.Carousel, 'Carousel() without new');
    assert.equal(c.constructor, g.Carousel);
    assert.equal(c.kind, 'carousel');
    assert.equal(c.name, 'test');
    assert.equal(c.slides, 3);
    assertGetter(g.Carousel.prototype, 'current', { setter: true });
    assert.deepEqual([c.next(), c.next(), c.next(), c.prev()], [1, 2, 0, 2]);
    assert.equal(c.current, 2);
    c.current = 7;
    assert.equal(c.current, 1);
    assert.equal(el.getAttribute('data-index'), '1');
    assert.deepEqual([d.prev(), d.goTo(10), d.next()], [0, 2, 2]);
    assert.equal(new g.Carousel(null).goTo(1), -1);
  });

  await check(`${L}: Counter (IIFE-private state, arguments.length)`, () => {
    const c = new g.Counter(5).increment().increment(10);
    assert.equal(c.value, 16);
    assert.ok(Number.isNaN(new g.Counter(1).increment(undefined).value), 'increment(undefined) is not increment()');
    assert.equal(new g.Counter().value, 0);
    assert.equal(g.Counter.instances(), 3);
    assert.equal('instances' in c, false);
  });

  await check(`${L}: Pipeline routes 4-parameter handlers as error handlers (fn.length)`, () => {
    const h = g.Legacy.handlers;
    assert.deepEqual([h.stamp.length, h.requireUser.length, h.handleError.length], [3, 2, 4]);
    const anonymous = g.Legacy.requests.run({ path: '/account' });
    assert.equal(json(anonymous), '{"status":401,"body":["seen /account","error: login required for /account"]}');
    const user = g.Legacy.requests.run({ path: '/account', user: 'ingrid' });
    assert.equal(json(user), '{"status":200,"body":["seen /account","hello ingrid"]}');
    assert.equal(g.Legacy.requests.errorHandlers.length, 1);
    assert.equal(g.Legacy.requests.handlers.length, 2);
  });

  await check(`${L}: Cookies module (IIFE over document, getter in literal)`, () => {
    const cookies = g.Legacy.Cookies;
    assertGetter(cookies, 'count');
    assert.equal(cookies.get('cart'), 'NW-1001,NW-2040');
    assert.equal(cookies.get('flag'), '');
    assert.equal(cookies.get('missing'), null);
    assert.equal(cookies.count, 3);
    assert.equal(cookies.set('a b', 'c;d', 2), 'a%20b=c%3Bd; path=/; max-age=172800');
    assert.equal(page.document.cookie, 'a%20b=c%3Bd; path=/; max-age=172800');
  });

  await check(`${L}: __proto__ literal sets the prototype; ['__proto__'] makes an own key`, () => {
    const L2 = g.Legacy;
    assert.equal(Object.getPrototypeOf(L2.defaults), L2.baseDefaults);
    assert.deepEqual(Object.keys(L2.defaults), ['theme']);
    assert.equal(L2.defaults.lang, 'en');
    assert.deepEqual(Object.keys(L2.dictionary), ['__proto__', 'plain']);
    assert.equal(Object.getPrototypeOf(L2.dictionary), inCtx('Object.prototype'));
    assert.equal(L2.dictionary.__proto__, 'own entry');
  });

  await check(`${L}: typeOf (typeof + instanceof switch) and once (this, arguments)`, () => {
    assert.equal(inCtx('[Legacy.typeOf(null), Legacy.typeOf([]), Legacy.typeOf({}), Legacy.typeOf(void 0), Legacy.typeOf(1), Legacy.typeOf("s"), Legacy.typeOf(sum)].join()'), 'null,array,object,undefined,number,string,function');
    const o = {
      n: 0,
      f: g.Legacy.once(function (a, b) {
        this.n += a + b;
        return this.n;
      }),
    };
    assert.equal(o.f(2, 3), 5);
    assert.equal(o.f(10, 10), 5);
    assert.equal(o.n, 5);
  });

  await check(`${L}: legacyInit on the fake page (for-in over inherited defaults, Qz, carousels)`, () => {
    const result = g.legacyInit({ theme: 'dark', year: 2025 });
    assert.equal(result.carousels.length, 2);
    assert.ok(result.carousels.every((c) => c instanceof g.Carousel));
    assert.equal(json(result.carousels.map((c) => c.slides)), '[3,2]');
    assert.equal(json(result.settings), '{"theme":"dark","lang":"en","loop":true,"year":2025}');
    assert.equal(page.document.documentElement.className, 'legacy-ready');
    assert.equal(page.document.querySelector('[data-legacy-year]').textContent, '© 2025 Northwind Trail Co.');
    assert.equal(g.legacyInit.calls, 1);
    const last = g.Legacy._events.at(-1);
    assert.equal(json(last), '{"name":"init","data":{"carousels":2,"theme":"dark","lang":"en"},"seq":' + g.Legacy.eventCount + '}');
  });

  // Each page: a fresh window, the two classic scripts, then the page's inline scripts.
  for (const rel of PAGES) {
    await check(`${rel}: inline scripts run against the globals`, () => {
      const scripts = inlineScripts(read(rel));
      assert.ok(scripts.length > 0, 'no inline script found');
      const location = { pathname: '/' + rel.replace(/index\.html$/, ''), search: '?debug=1', href: 'https://northwind-trail.example/' };
      const p = pageContext(location);
      runClassic(p.context, vendorCode, VENDOR);
      runClassic(p.context, legacyCode, LEGACY);
      scripts.forEach((code, i) => runClassic(p.context, code, `${rel}#inline-${i + 1}`));
      assert.equal(p.context.legacyInit.calls, 1, 'legacyInit() ran once');
      assert.ok(p.document.documentElement.className.includes('legacy-ready'));
      assert.ok(p.context.Legacy._events.some((e) => e && e.name === 'pageview'), 'no pageview tracked');
      if (rel === 'index.html') {
        assert.deepEqual(p.document.querySelectorAll('[data-sku]').map((el) => el.getAttribute('data-ready')), ['yes', 'yes']);
      }
      if (rel === 'blog/hello-world/index.html') {
        assert.equal(p.context.Legacy.debug, true, 'Legacy.debug setter ran');
        assert.equal(p.context.page.carousels.length, 2);
      }
    });
  }
}
