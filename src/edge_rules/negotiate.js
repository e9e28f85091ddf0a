// edgeship: content negotiation over a site's stored representations, as edgeship's own
// origin does it (src/http/origin/negotiate.rs and dictionary.rs).
//
// An asset is the site manifest's entry: { hash, size, variants: {br|gzip|zstd: size},
// single, deltas: [{from, encoding, size}], dictionary: {sha256, match} }.
//  - A coding listed with q=0 is excluded, one with q>0 gets that weight; `*` gives its
//    weight to codings not listed; identity stays acceptable at the lowest weight unless
//    `*;q=0` or `identity;q=0` excludes it; no header means identity.
//  - The highest weight wins; on a tie the smallest, then br > zstd > gzip > identity.
//  - A delta (dcb/dcz) needs `Available-Dictionary` to name the version it was made from
//    and its coding listed by name with q>0; among those the smallest wins.

var EDGESHIP_SUFFIX = { br: ".br", gzip: ".gz", zstd: ".zst" };
var EDGESHIP_RANK = { br: 0, zstd: 1, gzip: 2, identity: 3 };

function edgeshipWeights(header) {
  var weights = { named: {}, star: null };
  if (header === undefined || header === null) return null;
  var parts = String(header).split(",");
  for (var i = 0; i < parts.length; i++) {
    var fields = parts[i].split(";");
    var name = fields[0].trim().toLowerCase();
    if (name === "") continue;
    var q = 1;
    for (var j = 1; j < fields.length; j++) {
      var param = fields[j].trim().toLowerCase();
      if (param.indexOf("q=") === 0) {
        q = parseFloat(param.slice(2));
        if (!(q >= 0 && q <= 1)) q = 0;
      }
    }
    if (name === "*") weights.star = q;
    else weights.named[name] = q;
  }
  return weights;
}

function edgeshipWeight(weights, coding) {
  if (weights === null) return coding === "identity" ? 1 : 0;
  if (Object.prototype.hasOwnProperty.call(weights.named, coding)) return weights.named[coding];
  if (weights.star !== null) return weights.star;
  return coding === "identity" ? 0.0001 : 0;
}

// The SHA-256 (hex) an `Available-Dictionary` value names, or null when malformed.
function edgeshipDictionaryHex(value) {
  if (value === undefined || value === null) return null;
  var v = String(value).replace(/^[ \t]+|[ \t]+$/g, "");
  var m = /^:([A-Za-z0-9+/]{43}=):$/.exec(v);
  if (!m) return null;
  var alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  var bits = 0, acc = 0, hex = "", s = m[1].slice(0, 43);
  for (var i = 0; i < s.length; i++) {
    acc = (acc << 6) | alphabet.indexOf(s.charAt(i));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      var byte = (acc >> bits) & 0xff;
      hex += (byte < 16 ? "0" : "") + byte.toString(16);
    }
  }
  // 43 characters carry 258 bits: the last 2 must be zero, as in canonical base64.
  if ((acc & ((1 << bits) - 1)) !== 0) return null;
  return hex.length === 64 ? hex : null;
}

// The representation to send: { coding, suffix, size, etag }, or null (406).
// `held` is the hex SHA-256 from Available-Dictionary, or null; `missing` names codings
// whose stored object turned out to be missing (the next best is chosen instead).
function edgeshipChoose(asset, acceptEncoding, held, missing) {
  missing = missing || {};
  var weights = edgeshipWeights(acceptEncoding);
  var best = null;
  if (held !== null && asset.deltas) {
    for (var d = 0; d < asset.deltas.length; d++) {
      var delta = asset.deltas[d];
      if (delta.from !== held || weights === null || missing[delta.encoding]) continue;
      var named = weights.named[delta.encoding];
      if (!(named > 0)) continue;
      if (best === null || delta.size < best.size) {
        best = {
          coding: delta.encoding,
          suffix: "." + delta.from + "." + delta.encoding,
          size: delta.size,
          etag: '"' + asset.hash + "-" + delta.encoding + "-" + delta.from.slice(0, 16) + '"',
        };
      }
    }
    if (best !== null) return best;
  }
  var offered = [];
  if (asset.single) {
    offered.push({ coding: asset.single, suffix: "", size: asset.variants[asset.single] });
  } else {
    offered.push({ coding: "identity", suffix: "", size: asset.size });
    for (var enc in asset.variants || {}) {
      if (EDGESHIP_SUFFIX[enc]) offered.push({ coding: enc, suffix: EDGESHIP_SUFFIX[enc], size: asset.variants[enc] });
    }
  }
  var bestWeight = 0;
  for (var i = 0; i < offered.length; i++) {
    var r = offered[i];
    if (missing[r.coding]) continue;
    var w = edgeshipWeight(weights, r.coding);
    if (w <= 0) continue;
    if (best === null || w > bestWeight ||
        (w === bestWeight && (r.size < best.size ||
          (r.size === best.size && EDGESHIP_RANK[r.coding] < EDGESHIP_RANK[best.coding])))) {
      best = r;
      bestWeight = w;
    }
  }
  if (best === null) return null;
  var tag = best.coding === "identity" ? asset.hash : asset.hash + "-" + best.coding;
  return { coding: best.coding, suffix: best.suffix, size: best.size, etag: '"' + tag + '"' };
}

// `Vary` for an asset: deltas make the answer depend on Available-Dictionary too.
function edgeshipVary(asset) {
  return asset.deltas && asset.deltas.length > 0 ? "accept-encoding, available-dictionary" : "accept-encoding";
}

// `Use-As-Dictionary` for an asset, or null.
function edgeshipUseAsDictionary(asset) {
  if (!asset.dictionary) return null;
  var pattern = asset.dictionary.match;
  if (!/^[ -~]*$/.test(pattern)) return null;
  return 'match="' + pattern.replace(/["\\]/g, "\\$&") + '"';
}
