/*! northwind-storefront app v2.8.0 | MIT License | (c) 2024 Northwind Trail Co. | https://northwind-trail.example/licenses */
import {
  formatBytes,
  slugify,
  debounce,
  html,
  raw,
  dedent,
  SafeHtml,
  escapeHtml,
  hashString,
  groupBy,
  parseQuery,
  sumCents,
} from './util.8d7e6f50.js';

// ---------------------------------------------------------------------------
// Feature detection (top-level await: the module finishes loading after this)
// ---------------------------------------------------------------------------

async function detectFeatures() {
  const features = new Set(['esm']);
  if (typeof globalThis.IntersectionObserver === 'function') features.add('io');
  if (typeof globalThis.navigator?.share === 'function') features.add('share');
  if (typeof structuredClone === 'function') features.add('clone');
  await Promise.resolve();
  return features;
}

export const FEATURES = await detectFeatures();
export const BASE_URL = new URL('./', import.meta.url);

// ---------------------------------------------------------------------------
// Events and state
// ---------------------------------------------------------------------------

export class EventBus {
  #handlers = new Map();

  on(type, handler, { once = false } = {}) {
    const list = this.#handlers.get(type) ?? [];
    list.push({ handler, once });
    this.#handlers.set(type, list);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    const list = this.#handlers.get(type);
    if (!list) return false;
    const next = list.filter((entry) => entry.handler !== handler);
    if (next.length) this.#handlers.set(type, next);
    else this.#handlers.delete(type);
    return next.length !== list.length;
  }

  emit(type, ...args) {
    const list = this.#handlers.get(type);
    if (!list) return 0;
    let called = 0;
    for (const entry of [...list]) {
      if (entry.once) this.off(type, entry.handler);
      entry.handler.apply(this, args);
      called++;
    }
    return called;
  }

  get size() {
    let total = 0;
    for (const list of this.#handlers.values()) total += list.length;
    return total;
  }

  static isBus(value) {
    return value !== null && typeof value === 'object' && #handlers in value;
  }
}

export class Store extends EventBus {
  static #created = 0;
  #state;
  #history = [];

  static {
    Store.defaults = Object.freeze({ theme: 'light', currency: 'USD', locale: 'en-US' });
  }

  constructor(initial = {}) {
    super();
    this.#state = { ...Store.defaults, ...initial };
    Store.#created++;
  }

  static get created() {
    return Store.#created;
  }

  get state() {
    return Object.freeze({ ...this.#state });
  }

  set state(next) {
    const previous = this.#state;
    this.#state = { ...previous, ...next };
    this.#history.push(previous);
    this.emit('change', this.#state, previous);
  }

  get canUndo() {
    return this.#history.length > 0;
  }

  undo() {
    if (!this.canUndo) return false;
    this.#state = this.#history.pop();
    this.emit('change', this.#state, null);
    return true;
  }
}

const COUPON_PATTERN = /^(?<code>[A-Z]{4})-(?<percent>\d{1,2})$/;

export class Cart {
  #lines = new Map();
  #coupon = null;

  constructor(currency = 'USD') {
    this.currency = currency;
  }

  add({ sku, name, priceCents, quantity = 1 }) {
    if (!sku) throw new TypeError('Cart.add: a sku is required');
    const line = this.#lines.get(sku);
    if (line) line.quantity += quantity;
    else this.#lines.set(sku, { sku, name, priceCents, quantity });
    return this;
  }

  remove(sku) {
    return this.#lines.delete(sku);
  }

  get count() {
    let n = 0;
    for (const { quantity } of this.#lines.values()) n += quantity;
    return n;
  }

  get subtotalCents() {
    return Number(sumCents([...this.#lines.values()].map(({ priceCents, quantity }) => priceCents * quantity)));
  }

  get coupon() {
    return this.#coupon?.code ?? null;
  }

  set coupon(value) {
    if (value === null) {
      this.#coupon = null;
      return;
    }
    const match = COUPON_PATTERN.exec(String(value).trim().toUpperCase());
    if (!match) throw new RangeError(`Invalid coupon "${value}"`);
    const { code, percent } = match.groups;
    this.#coupon = { code: `${code}-${percent}`, percent: Number(percent) };
  }

  get totalCents() {
    const discount = this.#coupon ? Math.round((this.subtotalCents * this.#coupon.percent) / 100) : 0;
    return this.subtotalCents - discount;
  }

  *[Symbol.iterator]() {
    yield* this.#lines.values();
  }

  toJSON() {
    return { currency: this.currency, lines: [...this], coupon: this.coupon, totalCents: this.totalCents };
  }
}

export class HttpError extends Error {
  constructor(status, url, { cause } = {}) {
    super(`HTTP ${status} for ${url}`, { cause });
    this.name = 'HttpError';
    this.status = status;
    this.url = url;
  }

  get retryable() {
    return this.status >= 500 || this.status === 429;
  }
}

// ---------------------------------------------------------------------------
// Data loading
// ---------------------------------------------------------------------------

export async function fetchJson(url, { fetchImpl = globalThis.fetch, signal, headers = {} } = {}) {
  const response = await fetchImpl(url, { signal, headers: { accept: 'application/json', ...headers } });
  if (!response?.ok) {
    throw new HttpError(response?.status ?? 0, url);
  }
  return response.json();
}

/** Yields items page by page until the server stops returning a `next` cursor. */
export async function* paginate(fetchPage, { limit = Infinity } = {}) {
  let cursor = null;
  let yielded = 0;
  do {
    const { items = [], next = null } = (await fetchPage(cursor)) ?? {};
    for (const item of items) {
      if (yielded >= limit) return;
      yield item;
      yielded++;
    }
    cursor = next;
  } while (cursor !== null);
}

export async function collectAll(source, map = (x) => x) {
  const out = [];
  for await (const item of source) {
    out.push(await map(item));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Routing and search
// ---------------------------------------------------------------------------

const ROUTES = [
  { name: 'home', pattern: /^\/$/ },
  { name: 'about', pattern: /^\/about\/?$/ },
  { name: 'blog', pattern: /^\/blog\/?$/ },
  { name: 'post', pattern: /^\/blog\/(?<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\/?$/ },
  { name: 'product', pattern: /^\/p\/(?<sku>[A-Z]{2}-\d{4})(?:\/(?<variant>\w+))?$/u },
];

export function matchRoute(pathname) {
  const clean = pathname.split(/[?#]/)[0];
  for (const { name, pattern } of ROUTES) {
    const match = pattern.exec(clean);
    if (match) return { name, params: { ...match.groups } };
  }
  return { name: 'not-found', params: {} };
}

const TOKEN = /\s*(?:(?<field>[a-z]+):(?<value>"[^"]*"|\S+)|(?<quoted>"[^"]*")|(?<word>[^\s"]+))/y;

/** Splits `color:"deep red" size:M jacket` into fielded and free-text terms. */
export function parseSearch(query) {
  const fields = {};
  const words = [];
  TOKEN.lastIndex = 0;
  let match;
  while (TOKEN.lastIndex < query.length && (match = TOKEN.exec(query))) {
    const { field, value, quoted, word } = match.groups;
    const unquote = (s) => s.replace(/^"|"$/g, '');
    if (field) (fields[field] ??= []).push(unquote(value));
    else if (quoted) words.push(unquote(quoted));
    else if (word) words.push(word);
  }
  return { fields, words };
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

const priceFormatters = new Map();

export function formatPrice(cents, currency = 'USD', locale = 'en-US') {
  const key = `${locale}|${currency}`;
  let fmt = priceFormatters.get(key);
  if (!fmt) {
    fmt = new Intl.NumberFormat(locale, { style: 'currency', currency });
    priceFormatters.set(key, fmt);
  }
  return fmt.format(cents / 100);
}

export function renderProductCard(product) {
  const {
    sku,
    name,
    price: { amount = 0, currency = 'USD' } = {},
    tags = [],
    badge,
  } = product ?? {};
  return html`<article class="card" data-sku="${sku}">
  <h3 class="card__title">${name}</h3>
  <p class="card__price">${formatPrice(amount, currency)}</p>
  ${badge ? html`<span class="badge">${badge}</span>` : null}
  <ul class="tags">${tags.map((t) => html`<li>${t}</li>`)}</ul>
</article>`.toString();
}

export function renderReceipt(cart) {
  const lines = [...cart].map(({ name, quantity, priceCents }) => `  ${String(quantity).padStart(2)} × ${name.padEnd(18)} ${formatPrice(priceCents * quantity, cart.currency)}`);
  return `Receipt
${lines.join('\n')}
  ${'-'.repeat(30)}
  coupon: ${cart.coupon ?? '—'}
  total:  ${formatPrice(cart.totalCents, cart.currency)}`;
}

/** Returns the template strings of one call site: the same frozen array every call. */
export function templateKey(value) {
  return ((strings) => strings)`key:${value}:end`;
}

export function windowsPath(dir) {
  return raw`C:\Users\Public\northwind\cache` + '\\' + dir;
}

/** `extPattern('css')` matches "styles.5b6c7d8e.css"; the backslashes come from the raw strings. */
export function extPattern(ext) {
  return new RegExp(raw`^[\w.-]+\.${ext}$`, 'i');
}

export const bannerText = dedent`
    Northwind Trail — ${'free shipping'} on orders over $75
      (excludes oversized items)
  `;

export const settings = {
  _theme: 'light',
  changes: 0,
  get theme() {
    return this._theme;
  },
  set theme(value) {
    if (!['light', 'dark', 'auto'].includes(value)) throw new RangeError(`unknown theme ${value}`);
    this._theme = value;
    this.changes++;
  },
  get label() {
    return `${this._theme[0].toUpperCase()}${this._theme.slice(1)} theme`;
  },
};

export function describeUpload(files) {
  const byType = groupBy(files, (f) => f.name.split('.').pop().toLowerCase());
  const parts = [];
  outer: for (const [ext, list] of [...byType].sort(([a], [b]) => a.localeCompare(b))) {
    let total = 0;
    for (const file of list) {
      if (file.size < 0) continue outer;
      total += file.size;
    }
    switch (ext) {
      case 'jpg':
      case 'jpeg':
      case 'png':
        parts.push(`${list.length} image${list.length === 1 ? '' : 's'} (${formatBytes(total)})`);
        break;
      case 'js':
      case 'css':
        parts.push(`${list.length} ${ext.toUpperCase()} (${formatBytes(total)})`);
        break;
      default:
        parts.push(`${list.length} other (${formatBytes(total)})`);
    }
  }
  return parts.join(', ');
}

export function readOptions(search = '') {
  const query = parseQuery(search);
  const { page = '1', sort: order = 'featured', tag, ...rest } = query;
  return {
    page: Math.max(1, Number.parseInt(page, 10) || 1),
    order,
    tags: tag === undefined ? [] : [].concat(tag),
    extra: Object.keys(rest).sort(),
  };
}

export async function loadSlug(title) {
  const util = await import('./util.8d7e6f50.js');
  return util.slugify(title);
}

export function cacheKey(...parts) {
  return `nw:${hashString(parts.map((p) => (typeof p === 'object' ? JSON.stringify(p) : String(p))).join('|'))}`;
}

// ---------------------------------------------------------------------------
// Boot: wires the page. Runs on its own in a browser; tests call it with a fake document.
// ---------------------------------------------------------------------------

export function boot(doc, { store = new Store(), location = { pathname: '/', search: '' } } = {}) {
  const root = doc?.documentElement;
  if (!root) return null;
  const route = matchRoute(location.pathname);
  root.setAttribute('data-route', route.name);
  root.classList?.add('js', ...[...FEATURES].map((f) => `has-${f}`));

  const search = doc.querySelector('[data-search]');
  const onInput = debounce(function (event) {
    store.state = { query: event.target.value };
    this.setAttribute('data-last-query', slugify(event.target.value));
  }, 50);
  search?.addEventListener('input', onInput);

  store.on('change', (next) => {
    root.setAttribute('data-theme', next.theme);
  });

  const toggle = doc.querySelector('[data-theme-toggle]');
  toggle?.addEventListener('click', () => {
    store.state = { theme: store.state.theme === 'dark' ? 'light' : 'dark' };
  });

  return { route, store, onInput, escapeHtml, SafeHtml };
}

if (typeof document !== 'undefined' && document.documentElement && !globalThis.__NW_NO_BOOT__) {
  boot(document, { location: globalThis.location });
}

export default Object.freeze({ boot, Store, Cart, version: '2.8.0' });
//# sourceMappingURL=app.3f9c2a1b.js.map
