/*! northwind-storefront util v2.8.0 | MIT License | (c) 2024 Northwind Trail Co. */

/**
 * Small, dependency-free helpers shared by the storefront bundles.
 * Every export is pure (or only touches timers it owns) so it can be tested in isolation.
 */

const SI_UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
const IEC_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * Human-readable byte counts: `formatBytes(1536)` → "1.5 KB".
 * @param {number} bytes
 * @param {{ decimals?: number, binary?: boolean }} [options]
 */
export function formatBytes(bytes, { decimals = 1, binary = false } = {}) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) {
    throw new TypeError(`formatBytes: expected a finite number, got ${typeof bytes}`);
  }
  const base = binary ? 1024 : 1000;
  const units = binary ? IEC_UNITS : SI_UNITS;
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= base && unit < units.length - 1) {
    value /= base;
    unit += 1;
  }
  const text = unit === 0 ? String(value) : value.toFixed(decimals);
  return `${sign}${text} ${units[unit]}`;
}

/**
 * URL-safe slugs: strips accents, lower-cases, joins words with dashes.
 * `slugify("Café Menü & Drinks!")` → "cafe-menu-and-drinks".
 */
export function slugify(input, { maxLength = 64, separator = '-' } = {}) {
  const slug = String(input ?? '')
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/&/g, ' and ')
    .replace(/[^a-z0-9]+/g, separator)
    .replace(new RegExp(`^\\${separator}+|\\${separator}+$`, 'g'), '');
  if (slug.length <= maxLength) return slug;
  const cut = slug.slice(0, maxLength);
  const lastSep = cut.lastIndexOf(separator);
  return lastSep > maxLength / 2 ? cut.slice(0, lastSep) : cut;
}

export function clamp(value, min, max) {
  if (min > max) [min, max] = [max, min];
  return Math.min(max, Math.max(min, value));
}

/**
 * Delays `fn` until `wait` ms passed without another call. The wrapper is a plain
 * `function` on purpose: it forwards `this` and all arguments of the last call.
 */
export function debounce(fn, wait = 100, { leading = false } = {}) {
  let timer = null;
  let lastArgs = null;
  let lastThis = null;
  let result;

  function invoke() {
    const args = lastArgs;
    const self = lastThis;
    lastArgs = lastThis = null;
    result = fn.apply(self, args);
    return result;
  }

  function debounced() {
    const callNow = leading && timer === null;
    lastArgs = arguments;
    lastThis = this;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      if (!leading && lastArgs) invoke();
    }, wait);
    if (callNow) return invoke();
    return result;
  }

  debounced.cancel = function cancel() {
    if (timer !== null) clearTimeout(timer);
    timer = lastArgs = lastThis = null;
  };
  debounced.flush = function flush() {
    if (timer === null) return result;
    clearTimeout(timer);
    timer = null;
    return lastArgs ? invoke() : result;
  };
  Object.defineProperty(debounced, 'pending', {
    get() {
      return timer !== null;
    },
  });
  return debounced;
}

/** Caches results by the first argument (or by `resolver(...args)`). */
export function memoize(fn, resolver) {
  const cache = new Map();
  const memoized = function (...args) {
    const key = resolver ? resolver.apply(this, args) : args[0];
    if (cache.has(key)) return cache.get(key);
    const value = fn.apply(this, args);
    cache.set(key, value);
    return value;
  };
  memoized.cache = cache;
  return memoized;
}

export const sleep = (ms, value) => new Promise((resolve) => setTimeout(resolve, ms, value));

/** Retries an async function with exponential back-off; gives up after `retries` extra tries. */
export async function retry(task, { retries = 3, delay = 10, factor = 2, onRetry } = {}) {
  let attempt = 0;
  for (;;) {
    try {
      return await task(attempt);
    } catch (error) {
      if (attempt >= retries || error?.retryable === false) {
        throw error;
      }
      onRetry?.(error, attempt);
      await sleep(delay * factor ** attempt);
      attempt++;
    }
  }
}

const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]);
}

/** Marks a string as already-safe HTML. */
export class SafeHtml {
  constructor(value) {
    this.value = String(value);
  }
  toString() {
    return this.value;
  }
  get [Symbol.toStringTag]() {
    return 'SafeHtml';
  }
}

const seenTemplates = new WeakSet();
let templateCount = 0;

/**
 * Tagged template for HTML: interpolated values are escaped, arrays are joined,
 * `SafeHtml` values are inserted as-is. Counts distinct call sites (the `strings`
 * array is the same object every time one call site runs, as lit-html relies on).
 */
export function html(strings, ...values) {
  if (!seenTemplates.has(strings)) {
    seenTemplates.add(strings);
    templateCount++;
  }
  let out = strings[0];
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value instanceof SafeHtml) out += value.value;
    else if (Array.isArray(value)) out += value.map((v) => (v instanceof SafeHtml ? v.value : escapeHtml(v))).join('');
    else if (value === null || value === undefined || value === false) out += '';
    else out += escapeHtml(value);
    out += strings[i + 1];
  }
  return new SafeHtml(out);
}

Object.defineProperty(html, 'templateCount', {
  get: () => templateCount,
  enumerable: true,
});

/** Tagged template that keeps backslashes as written (uses the raw strings). */
export function raw(strings, ...values) {
  return strings.raw.reduce((acc, part, i) => acc + part + (i < values.length ? String(values[i]) : ''), '');
}

/** Removes the common leading indentation of a multi-line template. */
export function dedent(strings, ...values) {
  const text = strings.reduce((acc, part, i) => acc + part + (i < values.length ? values[i] : ''), '');
  const lines = text.replace(/^\n/, '').replace(/\n[ \t]*$/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^[ \t]*/)[0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

/** 32-bit FNV-1a, as 8 lower-case hex digits. */
export function hashString(input) {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(input)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

export function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

export function* chunk(items, size) {
  if (!(size > 0)) throw new RangeError('chunk size must be positive');
  for (let i = 0; i < items.length; i += size) {
    yield items.slice(i, i + size);
  }
}

export function groupBy(items, keyOf) {
  const groups = new Map();
  for (const item of items) {
    const key = typeof keyOf === 'function' ? keyOf(item) : item[keyOf];
    const bucket = groups.get(key);
    if (bucket) bucket.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

export function pick(source, ...keys) {
  const out = {};
  for (const key of keys.flat()) {
    if (Object.prototype.hasOwnProperty.call(source, key)) out[key] = source[key];
  }
  return out;
}

/** Parses a query string; repeated keys become arrays, `+` is a space. */
export function parseQuery(search) {
  const params = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search);
  const out = Object.create(null);
  for (const [key, value] of params) {
    if (key in out) out[key] = [].concat(out[key], value);
    else out[key] = value;
  }
  return out;
}

export function truncateMiddle(text, max, ellipsis = '…') {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  const keep = max - ellipsis.length;
  const head = Math.ceil(keep / 2);
  const tail = Math.floor(keep / 2);
  return chars.slice(0, head).join('') + ellipsis + chars.slice(chars.length - tail).join('');
}

/** Sums cents as BigInt so large order totals never lose precision. */
export function sumCents(values) {
  let total = 0n;
  for (const v of values) total += BigInt(v);
  return total;
}

export const MAX_SAFE_CENTS = 2n ** 53n - 1n;
export const VERSION = '2.8.0';
