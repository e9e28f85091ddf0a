/*! checkout-widget v0.3.1 (broken build) | MIT */
/*
 * A syntax error on purpose: `brokenInit` is never closed (the build that produced this
 * file was interrupted). The minifier must refuse it with a syntax error and the
 * original must ship byte for byte, with a warning naming the file.
 */
var Broken = {
  ready: false,
  attempts: 0,
  lastError: null,
  queue: []
};

function enqueue(task) {
  Broken.queue.push({ task: task, at: Broken.queue.length });
  return Broken.queue.length;
}

function drain() {
  var done = 0;
  while (Broken.queue.length) {
    var item = Broken.queue.shift();
    try {
      item.task();
      done++;
    } catch (e) {
      Broken.lastError = e;
    }
  }
  return done;
}

function brokenInit(options) {
  var opts = options || {};
  Broken.attempts += 1;
  if (opts.enabled) {
    Broken.ready = true;
    enqueue(function () {
      document.documentElement.className += ' checkout-ready';
    });
  }
  if (opts.autoDrain !== false) {
    drain();
  }
  return Broken;

window.brokenInit = brokenInit;
window.Broken = Broken;
