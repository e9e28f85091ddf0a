#!/usr/bin/env node
// Smoke-test one real-world JS library file (original or minified) in node.
//
// Usage: node tests/js/library-smoke.cjs <name> <file> [--corpus DIR]
//
//   <name>  an entry of tests/js/libraries.json (lodash, d3, three, three-module,
//           katex, react-dom, jquery, bootstrap). Its "mode" says how <file> is
//           loaded: "script" = classic script / CommonJS / UMD, "module" = ES module.
//   <file>  the file to test; any path, any name (e.g. a minifier's output).
//   --corpus DIR  the corpus installed by scripts/setup-js-corpus (default:
//           $EDGESHIP_JS_CORPUS, else $HOME/.cache/edgeship-test/js-corpus).
//           Dependencies (react for react-dom, jsdom for jquery/bootstrap) and
//           expected versions come from DIR/node_modules.
//
// Loading: script-mode files are copied to a fresh temp dir as <name>.cjs and run
// through node's CommonJS wrapper with a `require` made by createRequire() rooted
// at the corpus dir; module-mode files are copied as <name>.mjs and import()ed
// (so a nearby package.json "type" can't change how they are parsed). jquery and
// bootstrap are instead run inside a jsdom window with window.eval(<file text>),
// i.e. as classic browser scripts.
//
// Output: one line per check, "ok <name>: <check>" or "FAIL <name>: <check>: <why>",
// then a summary line "<name>: N passed, N failed". Exit 0 only if every check
// passed; 1 if any check failed; 2 on usage / setup errors (missing corpus etc.).
// The caller should apply a timeout (a broken minification could loop forever).
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');
const { pathToFileURL } = require('node:url');

const LIBRARIES_JSON = path.join(__dirname, 'libraries.json');

function usage(msg) {
  if (msg) process.stderr.write(`library-smoke: ${msg}\n`);
  process.stderr.write('usage: node tests/js/library-smoke.cjs <name> <file> [--corpus DIR]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const pos = [];
  let corpus = process.env.EDGESHIP_JS_CORPUS || path.join(os.homedir(), '.cache', 'edgeship-test', 'js-corpus');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--corpus') {
      if (i + 1 >= argv.length) usage('--corpus needs a value');
      corpus = argv[++i];
    } else if (a.startsWith('--corpus=')) {
      corpus = a.slice('--corpus='.length);
    } else if (a === '-h' || a === '--help') {
      usage();
    } else if (a.startsWith('--')) {
      usage(`unknown option ${a}`);
    } else {
      pos.push(a);
    }
  }
  if (pos.length !== 2) usage('expected exactly <name> and <file>');
  return { name: pos[0], file: path.resolve(pos[1]), corpus: path.resolve(corpus) };
}

// ---------------------------------------------------------------------------
// check runner

class Runner {
  constructor(lib) {
    this.lib = lib;
    this.passed = 0;
    this.failed = [];
  }
  async check(name, fn) {
    try {
      await fn();
      this.passed++;
      console.log(`ok ${this.lib}: ${name}`);
    } catch (e) {
      const why = String((e && (e.stack || e.message)) || e).split('\n').slice(0, 6).join('\n    ');
      this.failed.push(name);
      console.log(`FAIL ${this.lib}: ${name}: ${why}`);
    }
  }
}

// Compare via JSON so values created in another realm (jsdom window, vm context)
// compare by content rather than by prototype identity.
function eqJSON(actual, expected, msg) {
  assert.equal(JSON.stringify(actual), JSON.stringify(expected), msg);
}

const round6 = (v) => Math.round(v * 1e6) / 1e6 + 0; // + 0 turns -0 into 0
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// loaders

function makeLoader(ctx) {
  const { name, file, mode, corpus, tmp } = ctx;
  const corpusRequire = createRequire(path.join(corpus, 'package.json'));
  return {
    corpusRequire,
    // Load <file> the way node loads a .cjs file, but resolving bare
    // specifiers (e.g. require('react')) from the corpus.
    async load() {
      if (mode === 'module') {
        const dest = path.join(tmp, `${name}.mjs`);
        fs.copyFileSync(file, dest);
        return await import(pathToFileURL(dest).href);
      }
      const dest = path.join(tmp, `${name}.cjs`);
      fs.copyFileSync(file, dest);
      const src = fs.readFileSync(dest, 'utf8');
      const wrapper = vm.compileFunction(src, ['exports', 'require', 'module', '__filename', '__dirname'], {
        filename: dest,
      });
      const module = { exports: {}, id: dest, filename: dest, loaded: false };
      wrapper.call(module.exports, module.exports, corpusRequire, module, dest, path.dirname(dest));
      module.loaded = true;
      return module.exports;
    },
    // Run <file> as a classic script in a fresh global object (no module/exports),
    // like a browser <script>; returns the context (its global).
    loadAsGlobalScript(extraGlobals = {}) {
      const context = vm.createContext({ ...extraGlobals });
      vm.runInContext(fs.readFileSync(file, 'utf8'), context, { filename: file });
      return context;
    },
    text() {
      return fs.readFileSync(file, 'utf8');
    },
    // Version of a corpus package (read directly: some packages' "exports" hide package.json).
    pkgVersion(pkg) {
      return JSON.parse(fs.readFileSync(path.join(corpus, 'node_modules', pkg, 'package.json'), 'utf8')).version;
    },
  };
}

// jsdom window with the library file evaluated as a classic script.
function makeDom(loader, html) {
  const { JSDOM, VirtualConsole } = loader.corpusRequire('jsdom');
  const errors = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (e) => errors.push(e));
  virtualConsole.on('error', (...args) => errors.push(new Error(`console.error: ${args.join(' ')}`)));
  const dom = new JSDOM(html, { runScripts: 'outside-only', pretendToBeVisual: true, virtualConsole });
  return { dom, window: dom.window, document: dom.window.document, errors };
}

// ---------------------------------------------------------------------------
// smoke tests: async (t, loader) => void

const TESTS = {};

TESTS.lodash = async (t, L) => {
  let _;
  await t.check('load', async () => {
    _ = await L.load();
    assert.equal(typeof _, 'function');
  });
  if (!_) return;
  await t.check('VERSION', () => assert.equal(_.VERSION, L.pkgVersion('lodash')));
  await t.check('chunk', () => {
    assert.deepEqual(_.chunk(['a', 'b', 'c', 'd', 'e'], 2), [['a', 'b'], ['c', 'd'], ['e']]);
    assert.deepEqual(_.chunk([1, 2, 3], 0), []);
  });
  await t.check('template', () => {
    assert.equal(_.template('hello <%= user %>!')({ user: 'fred' }), 'hello fred!');
    assert.equal(
      _.template('<% _.forEach(users, function(u) { %><li><%- u %></li><% }); %>')({ users: ['<a&b>', 'x"y'] }),
      '<li>&lt;a&amp;b&gt;</li><li>x&quot;y</li>',
    );
    assert.equal(_.template('${ a } + ${ b }')({ a: 1, b: 2 }), '1 + 2');
  });
  await t.check('merge', () => {
    const object = { a: [{ b: 2 }, { d: 4 }] };
    const other = { a: [{ c: 3 }, { e: 5 }] };
    assert.deepEqual(_.merge(object, other), { a: [{ b: 2, c: 3 }, { d: 4, e: 5 }] });
  });
  await t.check('sortBy', () => {
    const users = [
      { user: 'fred', age: 48 },
      { user: 'barney', age: 36 },
      { user: 'fred', age: 40 },
      { user: 'barney', age: 34 },
    ];
    assert.deepEqual(_.sortBy(users, ['user', 'age']).map((u) => `${u.user}${u.age}`), [
      'barney34', 'barney36', 'fred40', 'fred48',
    ]);
    assert.deepEqual(_.orderBy(users, ['user', 'age'], ['asc', 'desc']).map((u) => `${u.user}${u.age}`), [
      'barney36', 'barney34', 'fred48', 'fred40',
    ]);
  });
  await t.check('isEqual', () => {
    assert.equal(_.isEqual({ a: [1, { b: new Date(5) }], c: new Set([1, 2]) }, { a: [1, { b: new Date(5) }], c: new Set([1, 2]) }), true);
    assert.equal(_.isEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 3 }] }), false);
    assert.equal(_.isEqual(NaN, NaN), true);
    assert.equal(_.isEqual([1, 2], [2, 1]), false);
  });
  await t.check('cloneDeep', () => {
    const src = { a: [{ b: 1 }], m: new Map([['k', { v: 2 }]]), d: new Date(7) };
    const c = _.cloneDeep(src);
    assert.notEqual(c.a[0], src.a[0]);
    assert.notEqual(c.m.get('k'), src.m.get('k'));
    assert.deepEqual(c, src);
    assert.equal(c.d.getTime(), 7);
  });
  await t.check('collections (groupBy/uniqBy/flattenDeep/zip/range)', () => {
    assert.deepEqual(_.groupBy([6.1, 4.2, 6.3], Math.floor), { 4: [4.2], 6: [6.1, 6.3] });
    assert.deepEqual(_.uniqBy([2.1, 1.2, 2.3], Math.floor), [2.1, 1.2]);
    assert.deepEqual(_.flattenDeep([1, [2, [3, [4]], 5]]), [1, 2, 3, 4, 5]);
    assert.deepEqual(_.zip(['a', 'b'], [1, 2]), [['a', 1], ['b', 2]]);
    assert.deepEqual(_.range(0, 20, 5), [0, 5, 10, 15]);
    assert.deepEqual(_.differenceWith([{ x: 1 }, { x: 2 }], [{ x: 1 }], _.isEqual), [{ x: 2 }]);
  });
  await t.check('objects (get/set/has/pick/omit/mapValues)', () => {
    const o = { a: [{ b: { c: 3 } }] };
    assert.equal(_.get(o, 'a[0].b.c'), 3);
    assert.equal(_.get(o, 'a[1].b', 'dflt'), 'dflt');
    _.set(o, 'x[0].y', 4);
    assert.deepEqual(o.x, [{ y: 4 }]);
    assert.equal(_.has(o, 'a[0].b'), true);
    assert.deepEqual(_.pick({ a: 1, b: '2', c: 3 }, ['a', 'c']), { a: 1, c: 3 });
    assert.deepEqual(_.omit({ a: 1, b: '2', c: 3 }, ['a', 'c']), { b: '2' });
    assert.deepEqual(_.mapValues({ f: { age: 40 }, p: { age: 1 } }, 'age'), { f: 40, p: 1 });
  });
  await t.check('strings', () => {
    assert.equal(_.camelCase('Foo Bar-baz'), 'fooBarBaz');
    assert.equal(_.kebabCase('fooBar Baz'), 'foo-bar-baz');
    assert.equal(_.escape('<a href="x">&\'</a>'), '&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;');
    assert.equal(_.padStart('7', 3, '0'), '007');
    assert.equal(_.truncate('hi-diddly-ho there, neighborino', { length: 24, separator: ' ' }), 'hi-diddly-ho there,...');
  });
  await t.check('functions (curry/memoize/debounce)', async () => {
    const add3 = _.curry((a, b, c) => a + b + c);
    assert.equal(add3(1)(2)(3), 6);
    assert.equal(add3(1, 2)(3), 6);
    let calls = 0;
    const sq = _.memoize((n) => (calls++, n * n));
    assert.equal(sq(4) + sq(4), 32);
    assert.equal(calls, 1);
    let hits = 0;
    const d = _.debounce(() => hits++, 20);
    d(); d(); d();
    assert.equal(hits, 0);
    await sleep(80);
    assert.equal(hits, 1);
  });
  await t.check('chaining', () => {
    const r = _([1, 2, 3, 4, 5, 6]).filter((n) => n % 2 === 0).map((n) => n * 10).reverse().value();
    assert.deepEqual(r, [60, 40, 20]);
  });
  await t.check('classic <script> load defines global _', () => {
    const g = L.loadAsGlobalScript();
    assert.equal(typeof g._, 'function');
    eqJSON(g._.chunk([1, 2, 3], 2), [[1, 2], [3]]);
  });
};

TESTS.d3 = async (t, L) => {
  let d3;
  await t.check('load', async () => {
    d3 = await L.load();
    assert.equal(typeof d3.select, 'function');
  });
  if (!d3) return;
  await t.check('version', () => assert.equal(d3.version, L.pkgVersion('d3')));
  await t.check('scaleLinear', () => {
    const s = d3.scaleLinear().domain([0, 1]).range([0, 10]);
    assert.equal(s(0.5), 5);
    assert.equal(s.invert(2.5), 0.25);
    assert.deepEqual(d3.scaleLinear().domain([0, 10]).ticks(5), [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(d3.scaleLinear().domain([0.13, 9.7]).nice().domain(), [0, 10]);
  });
  await t.check('format', () => {
    assert.equal(d3.format('.2f')(Math.PI), '3.14');
    assert.equal(d3.format(',')(1234567), '1,234,567');
    assert.equal(d3.format('$,.2f')(1234.5), '$1,234.50');
    assert.equal(d3.format('.1%')(0.123), '12.3%');
    assert.equal(d3.format('.3s')(12345), '12.3k');
    assert.equal(d3.format('+d')(-42), '\u221242'); // d3 uses U+2212 MINUS SIGN
  });
  await t.check('extent/sum/mean/bisect', () => {
    assert.deepEqual(d3.extent([3, 1, 4, 1, 5, 9, 2, 6]), [1, 9]);
    assert.equal(d3.sum([1, 2, 3.5]), 6.5);
    assert.equal(d3.mean([1, 2, 3, 4]), 2.5);
    assert.equal(d3.bisectLeft([1, 2, 3, 4], 3), 2);
    assert.deepEqual(Array.from(d3.group([{ k: 'a', v: 1 }, { k: 'b', v: 2 }, { k: 'a', v: 3 }], (d) => d.k), ([k, vs]) => [k, vs.length]), [['a', 2], ['b', 1]]);
  });
  await t.check('timeFormat/utcFormat/timeParse', () => {
    assert.equal(d3.timeFormat('%Y-%m-%d %H:%M')(new Date(2020, 0, 15, 13, 5)), '2020-01-15 13:05');
    assert.equal(d3.utcFormat('%a %b %e %Y')(new Date(Date.UTC(2021, 6, 4))), 'Sun Jul  4 2021');
    assert.equal(d3.utcParse('%Y-%m-%d')('2022-03-01').getTime(), Date.UTC(2022, 2, 1));
  });
  await t.check('line/area', () => {
    assert.equal(d3.line()([[0, 0], [1, 1], [2, 0]]), 'M0,0L1,1L2,0');
    assert.equal(d3.line().x((d) => d.x).y((d) => d.y * 2)([{ x: 0, y: 1 }, { x: 5, y: 2 }]), 'M0,2L5,4');
    assert.equal(d3.line().curve(d3.curveStep)([[0, 0], [2, 2]]), 'M0,0L1,0L1,2L2,2');
    assert.equal(d3.area()([[0, 1], [1, 2]]), 'M0,1L1,2L1,0L0,0Z');
  });
  await t.check('color/interpolate', () => {
    assert.equal(d3.interpolateRgb('red', 'blue')(0.5), 'rgb(128, 0, 128)');
    assert.equal(d3.color('steelblue').formatHex(), '#4682b4');
    assert.equal(d3.interpolateNumber(10, 20)(0.25), 12.5);
  });
  await t.check('csvParse/scaleBand/hierarchy', () => {
    const rows = d3.csvParse('a,b\n1,"x,y"\n3,4');
    assert.deepEqual(rows.columns, ['a', 'b']);
    assert.deepEqual(rows.map((r) => [r.a, r.b]), [['1', 'x,y'], ['3', '4']]);
    const band = d3.scaleBand().domain(['a', 'b', 'c', 'd']).range([0, 100]);
    assert.equal(band('c'), 50);
    assert.equal(band.bandwidth(), 25);
    const root = d3.hierarchy({ name: 'r', children: [{ name: 'a', value: 2 }, { name: 'b', value: 3 }] }).sum((d) => d.value || 0);
    assert.equal(root.value, 5);
    assert.deepEqual(root.leaves().map((n) => n.data.name), ['a', 'b']);
  });
  await t.check('classic <script> load defines global d3', () => {
    const g = L.loadAsGlobalScript();
    assert.equal(typeof g.d3, 'object');
    assert.equal(g.d3.scaleLinear().domain([0, 1]).range([0, 10])(0.5), 5);
  });
};

TESTS.three = async (t, L) => {
  let THREE;
  await t.check('load', async () => {
    THREE = await L.load();
    assert.equal(typeof THREE.Vector3, 'function');
  });
  if (!THREE) return;
  await t.check('REVISION', () => assert.equal(THREE.REVISION, L.pkgVersion('three').split('.')[1]));
  await t.check('Vector3', () => {
    const v = new THREE.Vector3(1, 2, 2);
    assert.equal(v.length(), 3);
    assert.deepEqual(v.clone().normalize().multiplyScalar(3).toArray().map(round6), [1, 2, 2]);
    assert.deepEqual(new THREE.Vector3(1, 0, 0).cross(new THREE.Vector3(0, 1, 0)).toArray(), [0, 0, 1]);
    assert.equal(new THREE.Vector3(1, 2, 3).dot(new THREE.Vector3(4, 5, 6)), 32);
  });
  await t.check('Matrix4', () => {
    const m = new THREE.Matrix4().makeRotationZ(Math.PI / 2);
    assert.deepEqual(new THREE.Vector3(1, 0, 0).applyMatrix4(m).toArray().map(round6), [0, 1, 0]);
    const c = new THREE.Matrix4().compose(
      new THREE.Vector3(1, 2, 3),
      new THREE.Quaternion().setFromAxisAngle(new THREE.Vector3(0, 1, 0), 0.3),
      new THREE.Vector3(2, 2, 2),
    );
    const ident = c.clone().multiply(c.clone().invert());
    assert.deepEqual(ident.toArray().map(round6), new THREE.Matrix4().toArray());
    assert.equal(round6(c.determinant()), 8);
    const p = new THREE.Vector3(), q = new THREE.Quaternion(), s = new THREE.Vector3();
    c.decompose(p, q, s);
    assert.deepEqual(p.toArray().map(round6), [1, 2, 3]);
    assert.deepEqual(s.toArray().map(round6), [2, 2, 2]);
  });
  await t.check('BoxGeometry', () => {
    const g = new THREE.BoxGeometry(2, 4, 6);
    assert.equal(g.attributes.position.count, 24);
    assert.equal(g.index.count, 36);
    g.computeBoundingBox();
    assert.deepEqual(g.boundingBox.min.toArray(), [-1, -2, -3]);
    assert.deepEqual(g.boundingBox.max.toArray(), [1, 2, 3]);
    const sphere = new THREE.SphereGeometry(1, 8, 6);
    assert.equal(sphere.attributes.position.count, 9 * 7);
  });
  await t.check('Quaternion', () => {
    const q = new THREE.Quaternion().setFromEuler(new THREE.Euler(0, Math.PI / 2, 0));
    const h = round6(Math.SQRT1_2);
    assert.deepEqual([q.x, q.y, q.z, q.w].map(round6), [0, h, 0, h]);
    assert.deepEqual(new THREE.Vector3(1, 0, 0).applyQuaternion(q).toArray().map(round6), [0, 0, -1]);
    const mid = new THREE.Quaternion().slerpQuaternions(new THREE.Quaternion(), q, 0.5);
    assert.equal(round6(mid.angleTo(q)), round6(Math.PI / 4));
  });
  await t.check('Object3D/Box3/Color', () => {
    const group = new THREE.Group();
    const mesh = new THREE.Mesh(new THREE.BoxGeometry(1, 1, 1), new THREE.MeshBasicMaterial({ color: 0xff8800 }));
    mesh.position.set(10, 0, 0);
    group.add(mesh);
    group.position.set(0, 5, 0);
    group.updateMatrixWorld(true);
    const box = new THREE.Box3().setFromObject(group);
    assert.deepEqual(box.min.toArray(), [9.5, 4.5, -0.5]);
    assert.deepEqual(box.max.toArray(), [10.5, 5.5, 0.5]);
    assert.equal(mesh.material.color.getHexString(), 'ff8800');
    assert.equal(new THREE.Color('rgb(255, 0, 0)').getHex(), 0xff0000);
    let n = 0;
    group.traverse(() => n++);
    assert.equal(n, 2);
  });
};
TESTS['three-module'] = TESTS.three;

TESTS.katex = async (t, L) => {
  let katex;
  await t.check('load', async () => {
    katex = await L.load();
    assert.equal(typeof katex.renderToString, 'function');
  });
  if (!katex) return;
  await t.check('version', () => assert.equal(katex.version, L.pkgVersion('katex')));
  await t.check('renderToString', () => {
    const html = katex.renderToString('x^2 + \\frac{a}{b}');
    assert.match(html, /^<span class="katex"><span class="katex-mathml"><math xmlns="http:\/\/www.w3.org\/1998\/Math\/MathML">/);
    assert.ok(html.includes('<msup><mi>x</mi><mn>2</mn></msup><mo>+</mo><mfrac><mi>a</mi><mi>b</mi></mfrac>'), 'MathML body');
    assert.ok(html.includes('<annotation encoding="application/x-tex">x^2 + \\frac{a}{b}</annotation>'), 'annotation');
    assert.ok(html.includes('class="katex-html" aria-hidden="true"'), 'html part');
    assert.ok(html.includes('<span class="mfrac">'), 'html mfrac');
  });
  await t.check('renderToString displayMode/escaping', () => {
    const html = katex.renderToString('\\sqrt{2} < \\text{a\\&b "q"}', { displayMode: true });
    assert.ok(html.startsWith('<span class="katex-display"><span class="katex">'), html.slice(0, 80));
    assert.ok(html.includes('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">'), 'display="block"');
    assert.ok(html.includes('<msqrt><mn>2</mn></msqrt><mo>&lt;</mo><mtext>a&amp;b\u00a0&quot;q&quot;</mtext>'), 'escaped MathML (text-mode space is U+00A0)');
    assert.ok(html.includes('>\\sqrt{2} &lt; \\text{a\\&amp;b &quot;q&quot;}</annotation>'), 'escaped annotation');
  });
  await t.check('ParseError', () => {
    assert.throws(() => katex.renderToString('\\frac{'), (e) => {
      assert.ok(e instanceof katex.ParseError, 'instanceof katex.ParseError');
      assert.match(e.message, /^KaTeX parse error: /);
      return true;
    });
    assert.throws(() => katex.renderToString('\\undefinedmacro'), katex.ParseError);
    const html = katex.renderToString('\\frac{', { throwOnError: false, errorColor: '#cc0000' });
    assert.match(html, /^<span class="katex-error" title="ParseError: KaTeX parse error: [^"]*" style="color:#cc0000">\\frac\{<\/span>$/);
  });
  await t.check('macros/__parse', () => {
    const html = katex.renderToString('\\RR', { macros: { '\\RR': '\\mathbb{R}' } });
    assert.ok(html.includes('<mi mathvariant="double-struck">R</mi>'), 'macro expanded');
    const tree = katex.__parse('a+b');
    assert.deepEqual(tree.map((n) => n.type), ['mathord', 'atom', 'mathord']);
  });
  await t.check('classic <script> load defines global katex', () => {
    const g = L.loadAsGlobalScript();
    assert.equal(typeof g.katex.renderToString, 'function');
    assert.ok(g.katex.renderToString('y').includes('<mi>y</mi>'));
  });
};

TESTS['react-dom'] = async (t, L) => {
  let ReactDOMServer;
  const React = L.corpusRequire('react');
  await t.check('load', async () => {
    ReactDOMServer = await L.load();
    assert.equal(typeof ReactDOMServer.renderToString, 'function');
  });
  if (!ReactDOMServer) return;
  const h = React.createElement;
  const Theme = React.createContext('light');
  function Counter({ start, label }) {
    const [n] = React.useState(start);
    const doubled = React.useMemo(() => n * 2, [n]);
    const theme = React.useContext(Theme);
    const ref = React.useRef(null);
    React.useEffect(() => { throw new Error('effects must not run on the server'); }, []);
    return h('span', { className: `c ${theme}`, 'data-n': n, ref }, label, ': ', n, '/', doubled);
  }
  function App({ items }) {
    return h(
      Theme.Provider,
      { value: 'dark' },
      h('div', { id: 'app', style: { fontSize: 12, marginTop: '1em' } },
        h(Counter, { start: 3, label: 'count' }),
        h('p', { title: 'a"b<c>' }, '<script>alert("x") & \'y\'</script>'),
        h('ul', null, items.map((it) => h('li', { key: it }, it))),
        h(React.Fragment, null, h('input', { type: 'checkbox', defaultChecked: true, disabled: false })),
        h('div', { dangerouslySetInnerHTML: { __html: '<b>raw</b>' } }),
      ),
    );
  }
  await t.check('version', () => assert.equal(ReactDOMServer.version, L.pkgVersion('react-dom')));
  await t.check('renderToString (hooks, context, escaping)', () => {
    const html = ReactDOMServer.renderToString(h(App, { items: ['x', 'y'] }));
    assert.equal(
      html,
      '<div id="app" style="font-size:12px;margin-top:1em">' +
        '<span class="c dark" data-n="3">count<!-- -->: <!-- -->3<!-- -->/<!-- -->6</span>' +
        '<p title="a&quot;b&lt;c&gt;">&lt;script&gt;alert(&quot;x&quot;) &amp; &#x27;y&#x27;&lt;/script&gt;</p>' +
        '<ul><li>x</li><li>y</li></ul>' +
        '<input type="checkbox" checked=""/>' +
        '<div><b>raw</b></div></div>',
    );
  });
  await t.check('renderToStaticMarkup', () => {
    const html = ReactDOMServer.renderToStaticMarkup(h(App, { items: [] }));
    assert.equal(
      html,
      '<div id="app" style="font-size:12px;margin-top:1em">' +
        '<span class="c dark" data-n="3">count: 3/6</span>' +
        '<p title="a&quot;b&lt;c&gt;">&lt;script&gt;alert(&quot;x&quot;) &amp; &#x27;y&#x27;&lt;/script&gt;</p>' +
        '<ul></ul><input type="checkbox" checked=""/><div><b>raw</b></div></div>',
    );
  });
  await t.check('render error propagates', () => {
    function Boom() { throw new Error('boom-123'); }
    assert.throws(() => ReactDOMServer.renderToString(h('div', null, h(Boom))), /boom-123/);
  });
};

const JQUERY_HTML = `<!DOCTYPE html><html><head></head><body>
<ul id="list"><li class="item">one</li><li class="item sel" data-id="7">two</li><li class="item">three</li></ul>
<div id="out"></div><form id="f"><input name="a" value="1"><input name="b" value="x y"></form>
</body></html>`;

TESTS.jquery = async (t, L) => {
  let env, $;
  await t.check('load in jsdom (window.eval)', () => {
    env = makeDom(L, JQUERY_HTML);
    env.window.eval(L.text());
    $ = env.window.jQuery;
    assert.equal(typeof $, 'function');
    assert.equal(env.window.$, $);
  });
  if (!$) return;
  await t.check('version', () => assert.equal($.fn.jquery, L.pkgVersion('jquery')));
  await t.check('selectors', () => {
    assert.equal($('#list .item').length, 3);
    assert.equal($('li.sel').text(), 'two');
    assert.equal($('li:first').text(), 'one'); // jQuery selector extension (Sizzle)
    assert.equal($('li:last-child').text(), 'three');
    eqJSON($('li').filter(':odd').map((i, el) => el.textContent).get(), ['two']);
    eqJSON($('li').not('.sel').map((i, el) => $(el).text()).get(), ['one', 'three']);
    assert.equal($('[data-id="7"]').data('id'), 7);
    assert.equal($('li.sel').closest('ul').attr('id'), 'list');
    assert.equal($('#list').find('li').eq(2).index(), 2);
  });
  await t.check('text()', () => {
    assert.equal($('#list').text(), 'onetwothree');
    $('li').eq(0).text('<b>uno</b>');
    assert.equal($('li').eq(0).html(), '&lt;b&gt;uno&lt;/b&gt;');
  });
  await t.check('append/addClass/css/attr', () => {
    const out = $('#out').append('<b class="x">hi</b>').append($('<i>', { text: 'there' })).addClass('a b').removeClass('a');
    assert.equal(out.html(), '<b class="x">hi</b><i>there</i>');
    assert.equal(out.attr('class'), 'b');
    assert.equal(out.hasClass('b'), true);
    out.css({ color: 'red', 'margin-left': 4 });
    assert.equal(env.document.getElementById('out').style.color, 'red');
    assert.equal(env.document.getElementById('out').style.marginLeft, '4px');
    assert.equal(out.css('color'), 'rgb(255, 0, 0)');
    $('b.x').remove();
    assert.equal(out.children().length, 1);
    out.toggleClass('b');
    assert.equal(out.attr('class'), '');
  });
  await t.check('events', () => {
    const log = [];
    const li = $('li.sel');
    li.on('click.ns', function (e) { log.push(`click:${this.textContent}:${e.type}`); });
    $('#list').on('custom', 'li', (e, a, b) => log.push(`custom:${a}+${b}:${e.delegateTarget.id}`));
    li.trigger('click');
    env.document.querySelector('li.sel').click(); // native event reaches jQuery handler
    li.trigger('custom', [1, 2]);
    li.off('.ns');
    li.trigger('click');
    let once = 0;
    li.one('ping', () => once++);
    li.trigger('ping').trigger('ping');
    assert.equal(once, 1);
    eqJSON(log, ['click:two:click', 'click:two:click', 'custom:1+2:list']);
  });
  await t.check('$.extend deep', () => {
    const r = $.extend(true, {}, { a: { b: 1, arr: [1, 2] }, s: 'x' }, { a: { c: 2, arr: [3] }, t: null });
    eqJSON(r, { a: { b: 1, arr: [3, 2], c: 2 }, s: 'x', t: null });
    const shallow = $.extend({}, { a: { b: 1 } }, { a: { c: 2 } });
    eqJSON(shallow, { a: { c: 2 } });
  });
  await t.check('utilities (map/each/grep/param/serialize/Deferred)', async () => {
    eqJSON($.map([1, 2, 3], (n) => (n === 2 ? null : n * 2)), [2, 6]);
    eqJSON($.grep([1, 2, 3, 4], (n) => n % 2 === 0), [2, 4]);
    const seen = [];
    $.each({ x: 1, y: 2 }, (k, v) => { seen.push(k + v); });
    eqJSON(seen, ['x1', 'y2']);
    assert.equal($.param({ a: [1, 2], b: 'c d' }), 'a%5B%5D=1&a%5B%5D=2&b=c%20d');
    assert.equal($('#f').serialize(), 'a=1&b=x%20y');
    assert.equal($.trim('  hi '), 'hi');
    const d = $.Deferred();
    const p = d.promise().then((v) => v * 2);
    d.resolve(21);
    assert.equal(await p, 42);
  });
  await t.check('no uncaught errors in window', () => {
    assert.equal(env.errors.length, 0, env.errors.map((e) => e.stack || e.message).join('\n'));
  });
  env.window.close();
};

const BOOTSTRAP_HTML = `<!DOCTYPE html><html><head></head><body>
<button id="btn" type="button" data-bs-toggle="collapse" data-bs-target="#c2">toggle</button>
<div id="c1" class="collapse">one</div>
<div id="c2" class="collapse">two</div>
<a id="tt" href="#" title="Tip &amp; more" data-bs-toggle="tooltip">hover</a>
<div id="al" class="alert alert-warning" role="alert">alert <button type="button" class="btn-close" data-bs-dismiss="alert"></button></div>
<div class="dropdown"><button id="dd" class="dropdown-toggle" data-bs-toggle="dropdown">menu</button>
  <ul class="dropdown-menu"><li><a class="dropdown-item" href="#">item</a></li></ul></div>
</body></html>`;

TESTS.bootstrap = async (t, L) => {
  let env, bs;
  await t.check('load in jsdom (window.eval)', () => {
    env = makeDom(L, BOOTSTRAP_HTML);
    env.window.eval(L.text());
    bs = env.window.bootstrap;
    assert.equal(typeof bs, 'object');
    for (const k of ['Alert', 'Button', 'Carousel', 'Collapse', 'Dropdown', 'Modal', 'Offcanvas', 'Popover', 'ScrollSpy', 'Tab', 'Toast', 'Tooltip']) {
      assert.equal(typeof bs[k], 'function', `bootstrap.${k}`);
    }
  });
  if (!bs) return;
  const doc = env.document;
  await t.check('VERSION', () => assert.equal(bs.Collapse.VERSION, L.pkgVersion('bootstrap')));
  await t.check('Collapse show', async () => {
    const el = doc.getElementById('c1');
    const events = [];
    el.addEventListener('show.bs.collapse', () => events.push('show'));
    el.addEventListener('shown.bs.collapse', () => events.push('shown'));
    const c = new bs.Collapse(el, { toggle: false });
    assert.equal(bs.Collapse.getInstance(el), c);
    c.show();
    assert.equal(el.className, 'collapsing');
    eqJSON(events, ['show']);
    await sleep(60); // transition end is emulated with a timer
    assert.equal(el.className, 'collapse show');
    eqJSON(events, ['show', 'shown']);
    c.hide();
    await sleep(60);
    assert.equal(el.className, 'collapse');
  });
  await t.check('Collapse data API (click)', async () => {
    doc.getElementById('btn').click();
    await sleep(60);
    const el = doc.getElementById('c2');
    assert.equal(el.className, 'collapse show');
    assert.equal(doc.getElementById('btn').getAttribute('aria-expanded'), 'true');
    assert.ok(bs.Collapse.getInstance(el) instanceof bs.Collapse);
  });
  await t.check('Tooltip getInstance/show', async () => {
    const a = doc.getElementById('tt');
    assert.equal(bs.Tooltip.getInstance(a), null);
    const tip = new bs.Tooltip(a, { animation: false });
    assert.equal(bs.Tooltip.getInstance(a), tip);
    assert.equal(bs.Tooltip.getOrCreateInstance(a), tip);
    assert.equal(a.getAttribute('title'), null); // moved to data-bs-original-title
    assert.equal(a.getAttribute('data-bs-original-title'), 'Tip & more');
    tip.show();
    await sleep(30);
    const inner = doc.querySelector('.tooltip .tooltip-inner');
    assert.ok(inner, 'tooltip element inserted');
    assert.equal(inner.textContent, 'Tip & more');
    assert.equal(a.getAttribute('aria-describedby'), doc.querySelector('.tooltip').id);
    tip.dispose();
    assert.equal(bs.Tooltip.getInstance(a), null);
  });
  await t.check('Alert close (data API)', async () => {
    doc.querySelector('#al .btn-close').click();
    await sleep(30);
    assert.equal(doc.getElementById('al'), null);
  });
  await t.check('Dropdown toggle (Popper)', async () => {
    const btn = doc.getElementById('dd');
    const dd = bs.Dropdown.getOrCreateInstance(btn);
    dd.show();
    await sleep(30);
    assert.equal(btn.getAttribute('aria-expanded'), 'true');
    assert.ok(doc.querySelector('.dropdown-menu').classList.contains('show'));
    dd.hide();
    assert.equal(btn.getAttribute('aria-expanded'), 'false');
  });
  await t.check('no uncaught errors in window', () => {
    assert.equal(env.errors.length, 0, env.errors.map((e) => e.stack || e.message).join('\n'));
  });
  env.window.close();
};

// ---------------------------------------------------------------------------

async function main() {
  const { name, file, corpus } = parseArgs(process.argv.slice(2));
  const libs = JSON.parse(fs.readFileSync(LIBRARIES_JSON, 'utf8'));
  const entry = libs.find((l) => l.name === name);
  if (!entry) usage(`unknown library '${name}' (known: ${libs.map((l) => l.name).join(', ')})`);
  const test = TESTS[name];
  if (!test) usage(`no smoke test for '${name}' in ${__filename}`);
  if (!fs.existsSync(file)) usage(`file not found: ${file}`);
  if (!fs.existsSync(path.join(corpus, 'node_modules'))) {
    usage(`JS corpus not installed at ${corpus} (run scripts/setup-js-corpus, or pass --corpus DIR / set EDGESHIP_JS_CORPUS)`);
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeship-smoke-'));
  const t = new Runner(name);
  try {
    const loader = makeLoader({ name, file, mode: entry.mode, corpus, tmp });
    console.log(`# ${name} (${entry.mode}) ${file}`);
    await test(t, loader);
  } catch (e) {
    // A test body itself crashed outside a check.
    t.failed.push('(harness)');
    console.log(`FAIL ${name}: (harness): ${e && e.stack ? e.stack : e}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${name}: ${t.passed} passed, ${t.failed.length} failed`);
  if (t.failed.length) console.log(`${name}: FAILED checks: ${t.failed.join('; ')}`);
  // Exit explicitly: jsdom timers or library intervals must not keep us alive.
  process.exit(t.failed.length || t.passed === 0 ? 1 : 0);
}

process.on('unhandledRejection', (e) => {
  console.log(`FAIL (unhandled rejection): ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});

main();
