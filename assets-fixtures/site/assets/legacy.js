/*! Northwind legacy widgets v0.9.3 | (c) 2016-2024 Northwind Trail Co. | MIT License */
/*
 * Classic script (no modules): loaded with a plain <script src> after vendor.min.js.
 * Pages call `legacyInit()` and read `Legacy.*` from inline scripts, so every top-level
 * name below is part of the public API and must keep its name.
 */
/* global Qz */

var LEGACY_BUILD = 'r4821';

var Legacy = {
  _debug: false,
  _events: [],
  get version() {
    return '0.9.3+' + LEGACY_BUILD;
  },
  get debug() {
    return this._debug;
  },
  set debug(on) {
    this._debug = !!on;
    this.log('debug', on ? 'on' : 'off');
  },
  log: function () {
    // `arguments` of this function, joined: Legacy.log('a', 1) -> "a 1"
    var line = Array.prototype.join.call(arguments, ' ');
    if (this._debug) {
      this._events.push('log: ' + line);
    }
    return line;
  },
  track: function (name, data) {
    var entry = { name: name, data: data || null, seq: this._events.length + 1 };
    this._events.push(entry);
    return entry.seq;
  }
};

/* ---------------------------------------------------------------------------
 * Plain helpers (globals used by inline scripts)
 * ------------------------------------------------------------------------ */

function sum() {
  var total = 0;
  for (var i = 0; i < arguments.length; i++) {
    total += Number(arguments[i]) || 0;
  }
  return total;
}

// Sloppy-mode functions share slots between `arguments` and named parameters.
function aliasArguments(first) {
  arguments[0] = 'changed through arguments';
  return first;
}

function sloppyThis() {
  return this;
}

function strictThis() {
  'use strict';
  return this;
}

function legacyFormat(template) {
  var args = Array.prototype.slice.call(arguments, 1);
  return String(template).replace(/\{(\d+)\}/g, function (match, index) {
    var value = args[index];
    return value === undefined ? match : String(value);
  });
}

/* ---------------------------------------------------------------------------
 * Widgets: constructor functions with prototypes
 * ------------------------------------------------------------------------ */

function Widget(name) {
  if (!(this instanceof Widget)) {
    throw new TypeError('Widget must be called with new');
  }
  this.name = name || 'widget';
  this.id = Widget.nextId++;
}
Widget.nextId = 1;
Widget.prototype.describe = function () {
  return '[' + this.kind + ' ' + this.name + '#' + this.id + ']';
};
Widget.prototype.kind = 'widget';

function Modal(name, options) {
  Widget.call(this, name);
  options = options || {};
  this.closable = options.closable !== false;
  this._open = false;
}
Modal.prototype = Object.create(Widget.prototype);
Modal.prototype.constructor = Modal;
Modal.prototype.kind = 'modal';
Modal.prototype.open = function () {
  this._open = true;
  return this;
};
Modal.prototype.close = function () {
  if (!this.closable) return false;
  this._open = false;
  return true;
};
Object.defineProperty(Modal.prototype, 'isOpen', {
  get: function () {
    return this._open;
  },
  configurable: true
});

function Carousel(element, options) {
  // Works with and without `new`, like many jQuery-era plugins.
  if (!(this instanceof Carousel)) {
    return new Carousel(element, options);
  }
  Widget.call(this, (element && element.getAttribute && element.getAttribute('data-carousel')) || 'carousel');
  this.element = element || null;
  this.loop = !options || options.loop !== false;
  this._index = 0;
  this.slides = element && element.children ? element.children.length : 0;
}
Carousel.prototype = Object.create(Widget.prototype, {
  constructor: { value: Carousel, writable: true, configurable: true },
  kind: { value: 'carousel' }
});
Carousel.prototype.goTo = function (index) {
  var count = this.slides;
  if (count === 0) return -1;
  if (this.loop) {
    index = ((index % count) + count) % count;
  } else {
    index = Math.max(0, Math.min(count - 1, index));
  }
  this._index = index;
  if (this.element && this.element.setAttribute) {
    this.element.setAttribute('data-index', String(index));
  }
  return index;
};
Carousel.prototype.next = function () {
  return this.goTo(this._index + 1);
};
Carousel.prototype.prev = function () {
  return this.goTo(this._index - 1);
};
Object.defineProperty(Carousel.prototype, 'current', {
  get: function () {
    return this._index;
  },
  set: function (value) {
    this.goTo(value);
  },
  enumerable: false,
  configurable: true
});

/* ---------------------------------------------------------------------------
 * Module pattern (IIFE) with private state
 * ------------------------------------------------------------------------ */

var Counter = (function () {
  var instances = 0;

  function Counter(start) {
    this.value = typeof start === 'number' ? start : 0;
    instances += 1;
  }

  Counter.prototype.increment = function (step) {
    this.value += arguments.length ? step : 1;
    return this;
  };

  Counter.instances = function () {
    return instances;
  };

  return Counter;
})();

var Pipeline = (function () {
  function Pipeline() {
    this.handlers = [];
    this.errorHandlers = [];
  }

  // Express-style: a handler declared with four parameters handles errors. The
  // decision is made from `fn.length`, so parameter lists must be kept as written.
  Pipeline.prototype.use = function (fn) {
    if (typeof fn !== 'function') throw new TypeError('use() expects a function');
    (fn.length >= 4 ? this.errorHandlers : this.handlers).push(fn);
    return this;
  };

  Pipeline.prototype.run = function (request) {
    var response = { status: 200, body: [] };
    var error = null;
    for (var i = 0; i < this.handlers.length; i++) {
      try {
        this.handlers[i].call(this, request, response, function next() {});
      } catch (e) {
        error = e;
        break;
      }
    }
    if (error) {
      for (var j = 0; j < this.errorHandlers.length; j++) {
        this.errorHandlers[j].call(this, error, request, response, function next() {});
      }
    }
    return response;
  };

  return Pipeline;
})();

// The handlers the pages register. `handleError` never calls `next`, but it must keep
// declaring it: without the fourth parameter it would be registered as a normal handler.
Legacy.handlers = {
  stamp: function (request, response, next) {
    response.body.push('seen ' + request.path);
    next();
  },
  requireUser: function (request, response) {
    if (!request.user) {
      var error = new Error('login required for ' + request.path);
      error.status = 401;
      throw error;
    }
    response.body.push('hello ' + request.user);
  },
  handleError: function (error, request, response, next) {
    response.status = error.status || 500;
    response.body.push('error: ' + error.message);
  }
};

Legacy.requests = new Pipeline()
  .use(Legacy.handlers.stamp)
  .use(Legacy.handlers.requireUser)
  .use(Legacy.handlers.handleError);

Legacy.Cookies = (function (doc) {
  function parse() {
    var out = {};
    var raw = (doc && doc.cookie) || '';
    var parts = raw.split(/;\s*/);
    for (var i = 0; i < parts.length; i++) {
      if (!parts[i]) continue;
      var eq = parts[i].indexOf('=');
      var key = decodeURIComponent(eq < 0 ? parts[i] : parts[i].slice(0, eq));
      out[key] = eq < 0 ? '' : decodeURIComponent(parts[i].slice(eq + 1));
    }
    return out;
  }
  return {
    get: function (name) {
      var all = parse();
      return Object.prototype.hasOwnProperty.call(all, name) ? all[name] : null;
    },
    set: function (name, value, days) {
      var cookie = encodeURIComponent(name) + '=' + encodeURIComponent(value) + '; path=/';
      if (days) cookie += '; max-age=' + days * 86400;
      if (doc) doc.cookie = cookie;
      return cookie;
    },
    get count() {
      return Object.keys(parse()).length;
    }
  };
})(typeof document !== 'undefined' ? document : null);

/* ---------------------------------------------------------------------------
 * Defaults: `__proto__:` in a literal sets the prototype, a computed
 * `['__proto__']` key creates an own property. They are not interchangeable.
 * ------------------------------------------------------------------------ */

Legacy.baseDefaults = { lang: 'en', loop: true };
Legacy.defaults = { __proto__: Legacy.baseDefaults, theme: 'auto' };
Legacy.dictionary = { ['__proto__']: 'own entry', plain: 'yes' };

Legacy.typeOf = function (value) {
  switch (typeof value) {
    case 'object':
      if (value === null) return 'null';
      if (value instanceof Array) return 'array';
      return 'object';
    case 'undefined':
      return 'undefined';
    default:
      return typeof value;
  }
};

Legacy.once = function (fn) {
  var done = false;
  var result;
  return function () {
    if (!done) {
      done = true;
      result = fn.apply(this, arguments);
    }
    return result;
  };
};

Legacy.format = legacyFormat;
Legacy.Widget = Widget;
Legacy.Modal = Modal;
Legacy.Carousel = Carousel;

Object.defineProperty(Legacy, 'eventCount', {
  get: function () {
    return this._events.length;
  },
  enumerable: true
});

/* ---------------------------------------------------------------------------
 * Entry point used by the pages: <script>legacyInit({ theme: 'dark' })</script>
 * ------------------------------------------------------------------------ */

function legacyInit(options) {
  var settings = {};
  var key;
  for (key in Legacy.defaults) {
    settings[key] = Legacy.defaults[key];
  }
  if (options) {
    for (key in options) {
      if (Object.prototype.hasOwnProperty.call(options, key)) settings[key] = options[key];
    }
  }
  var doc = settings.document || window.document;
  var root = doc.documentElement;
  root.className = (root.className ? root.className + ' ' : '') + 'legacy-ready';

  var carousels = [];
  var nodes = doc.querySelectorAll('[data-carousel]');
  for (var i = 0; i < nodes.length; i++) {
    carousels.push(new Carousel(nodes[i], { loop: settings.loop }));
  }

  if (typeof Qz === 'function') {
    Qz('[data-legacy-year]', doc).each(function () {
      this.textContent = legacyFormat('© {0} Northwind Trail Co.', settings.year || 2024);
    });
  }

  legacyInit.calls = (legacyInit.calls || 0) + 1;
  Legacy.track('init', { carousels: carousels.length, theme: settings.theme, lang: settings.lang });
  return { carousels: carousels, settings: settings, root: root };
}
