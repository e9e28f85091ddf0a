/*! price-tools v1.0.2 | MIT */
// An ES module saved with a plain .js extension. It must be minified in module mode
// (import/export syntax detected, not the extension), and its export names must survive.
// The imported file is not part of this fixture: the module is minified, never run.
import { roundHalfEven } from './rounding-not-shipped.js';

const DEFAULT_RATE = 0.25;
const CURRENCY_SYMBOLS = { USD: '$', EUR: '€', GBP: '£', NOK: 'kr ' };

export function withTax(cents, rate = DEFAULT_RATE) {
  return roundHalfEven(cents * (1 + rate));
}

export function formatCents(cents, currency = 'USD') {
  const symbol = CURRENCY_SYMBOLS[currency] ?? `${currency} `;
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${symbol}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

export class PriceTag {
  #cents;

  constructor(cents, currency = 'USD') {
    this.#cents = cents;
    this.currency = currency;
  }

  get cents() {
    return this.#cents;
  }

  set cents(value) {
    if (!Number.isInteger(value)) throw new TypeError('cents must be an integer');
    this.#cents = value;
  }

  get label() {
    return formatCents(this.#cents, this.currency);
  }

  withTax(rate) {
    return new PriceTag(withTax(this.#cents, rate), this.currency);
  }
}

export async function* priceStream(source) {
  for await (const cents of source) {
    yield new PriceTag(cents);
  }
}

export { DEFAULT_RATE as defaultRate };
export default withTax;
