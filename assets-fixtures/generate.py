#!/usr/bin/env python3
"""Regenerates the generated fixture files (the hand-written ones are edited directly).

    python3 assets-fixtures/generate.py            # deterministic files only
    python3 assets-fixtures/generate.py --random   # also the random-byte files (new bytes!)

Deterministic outputs (same bytes every run):
  site/assets/app.3f9c2a1b.js.map   line mappings + sourcesContent for app.3f9c2a1b.js
  site/images/hero.png              64x64 RGB gradient PNG
  site/images/favicon.ico           16x16 32-bit BMP icon
  edge-cases/huge-line.js           ~50 KB single-line script (seeded PRNG)
  edge-cases/bad-utf8.css           CSS with invalid UTF-8 bytes

With --random (changes content hashes in tests' expectations, if any pin them):
  site/fonts/inter-subset.4a5b6c7d.woff2, edge-cases/random.bin, edge-cases/random.txt
"""

import json
import os
import random
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, 'site')
EDGE = os.path.join(HERE, 'edge-cases')


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    print(f'{os.path.relpath(path, HERE)}: {len(data)} bytes')


# --- source map -------------------------------------------------------------------------

B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'


def vlq(n):
    n = ((-n) << 1) | 1 if n < 0 else n << 1
    out = ''
    while True:
        digit = n & 31
        n >>= 5
        if n:
            digit |= 32
        out += B64[digit]
        if not n:
            return out


def source_map():
    src = open(os.path.join(SITE, 'assets', 'app.3f9c2a1b.js'), encoding='utf-8').read()
    lines = src.split('\n')
    segments = []
    prev_line = prev_col = 0
    for i, line in enumerate(lines):
        if line.startswith('//# sourceMappingURL=') or not line.strip():
            segments.append('')
            continue
        col = len(line) - len(line.lstrip())
        segments.append(vlq(col) + vlq(0) + vlq(i - prev_line) + vlq(col - prev_col))
        prev_line, prev_col = i, col
    original = '\n'.join(l for l in lines if not l.startswith('//# sourceMappingURL=')).rstrip('\n') + '\n'
    sm = {
        'version': 3,
        'file': 'app.3f9c2a1b.js',
        'sourceRoot': '',
        'sources': ['../../src/app.js'],
        'sourcesContent': [original],
        'names': [],
        'mappings': ';'.join(segments),
        'x_google_ignoreList': [],
    }
    text = json.dumps(sm, indent=2, ensure_ascii=False) + '\n'
    write(os.path.join(SITE, 'assets', 'app.3f9c2a1b.js.map'), text.encode('utf-8'))


# --- images -----------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def hero_png():
    w = h = 64
    raw = bytearray()
    for y in range(h):
        raw.append(0)  # filter type: none
        for x in range(w):
            t = y / (h - 1)
            r = int(251 * (1 - t) + 63 * t)
            g = int(227 * (1 - t) + 107 * t)
            b = int(201 * (1 - t) + 120 * t + 20 * (x / (w - 1)))
            if y > 44 + int(6 * ((x - 32) / 32) ** 2):  # a hill
                r, g, b = 63, 107, 74
            raw += bytes([r, g, min(b, 255)])
    png = b'\x89PNG\r\n\x1a\n'
    png += png_chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
    png += png_chunk(b'tEXt', b'Software\x00edgeship fixture generator')
    png += png_chunk(b'IDAT', zlib.compress(bytes(raw), 9))
    png += png_chunk(b'IEND', b'')
    write(os.path.join(SITE, 'images', 'hero.png'), png)


def favicon_ico():
    s = 16
    pixels = bytearray()
    for y in range(s - 1, -1, -1):  # BMP rows are bottom-up
        for x in range(s):
            inside = (x - 7.5) ** 2 + (y - 7.5) ** 2 <= 7.5 ** 2
            tree = abs(x - 7.5) < (y - 2) * 0.45 and 3 <= y <= 12
            if tree:
                pixels += bytes([0x24, 0x1F, 0x1B, 0xFF])
            elif inside:
                pixels += bytes([0x4A, 0x6B, 0x3F, 0xFF])
            else:
                pixels += bytes(4)
    mask = bytes(4 * s)  # 1-bpp AND mask, rows padded to 32 bits
    header = struct.pack('<IiiHHIIiiII', 40, s, s * 2, 1, 32, 0, len(pixels) + len(mask), 0, 0, 0, 0)
    image = header + pixels + mask
    ico = struct.pack('<HHH', 0, 1, 1) + struct.pack('<BBBBHHII', s, s, 0, 0, 1, 32, len(image), 22) + image
    write(os.path.join(SITE, 'images', 'favicon.ico'), ico)


# --- edge cases -------------------------------------------------------------------------

def huge_line_js():
    rng = random.Random(20241002)
    words = ['alder', 'birch', 'cedar', 'dune', 'ember', 'fjord', 'glacier', 'heath', 'inlet', 'juniper',
             'kelp', 'lichen', 'moss', 'nordic', 'oak', 'pine', 'quartz', 'ridge', 'spruce', 'tarn',
             'umber', 'valley', 'willow', 'yarrow', 'zephyr']
    parts = []
    i = 0
    while sum(len(p) + 1 for p in parts) <= 49000:
        i += 1
        name = f'{rng.choice(words)}-{rng.choice(words)}-{i}'
        price = rng.randint(500, 99999)
        stock = rng.randint(0, 400)
        tags = ','.join(f'"{rng.choice(words)}"' for _ in range(rng.randint(1, 3)))
        parts.append(f'{{id:{i},sku:"HL-{i:05d}",name:"{name}",cents:{price},stock:{stock},tags:[{tags}],ratio:{rng.random():.4f}}}')
    code = ('/*! huge-line fixture: one valid line of about 50 KB, like a generated data bundle */'
            'var HugeLine=(function(){"use strict";var table=[' + ','.join(parts) + '];'
            'function bySku(s){for(var i=0;i<table.length;i++){if(table[i].sku===s)return table[i]}return null}'
            'function total(){return table.reduce(function(a,e){return a+e.cents*e.stock},0)}'
            'function tagged(t){return table.filter(function(e){return e.tags.indexOf(t)!==-1}).length}'
            'return{table:table,bySku:bySku,total:total,tagged:tagged,get size(){return table.length}}})();\n')
    write(os.path.join(EDGE, 'huge-line.js'), code.encode('ascii'))


def bad_utf8_css():
    css = (b'/* Saved as Latin-1 by an old editor: caf\xe9 men\xfc, \xa3 prices.\n'
           b'   Also a stray continuation byte \x80 and a truncated sequence in a string below.\n'
           b'   A minifier that needs UTF-8 must fall back and ship these bytes unchanged. */\n'
           b'.price::before {\n  content: "\xa3";\n  color: #3f6b4a;\n  font-weight: 600;\n}\n\n'
           b'.truncated::after {\n  content: "\xe2\x86";\n  margin-left: 0.25em;\n}\n\n'
           b'.ok::after {\n  content: "\xe2\x86\x92";\n}\n\n'
           b'.caf\xe9-menu {\n  display: grid;\n  grid-template-columns: 1fr auto;\n  gap: 0.5rem 1rem;\n  padding: 1rem;\n}\n\n'
           b'.caf\xe9-menu dt {\n  font-weight: 600;\n}\n\n'
           b'.caf\xe9-menu dd {\n  margin: 0;\n  text-align: right;\n  font-variant-numeric: tabular-nums;\n}\n\n'
           b'@media (max-width: 600px) {\n  .caf\xe9-menu {\n    grid-template-columns: 1fr;\n  }\n}\n')
    write(os.path.join(EDGE, 'bad-utf8.css'), css)


# --- random-byte files ------------------------------------------------------------------

def woff2():
    """A real WOFF2 header and table directory; the 'compressed' payload is random bytes."""
    payload = os.urandom(3000)

    def base128(n):
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        return bytes(reversed(out))

    # (known-table index, original length); 10 = glyf, 11 = loca (carry a transformLength)
    tables = [(0, 96), (1, 4512), (2, 54), (3, 36), (4, 1020), (5, 6), (6, 1882), (7, 212), (10, 9876), (11, 0)]
    directory = b''
    for index, length in tables:
        directory += bytes([index]) + base128(length)
        if index in (10, 11):
            directory += base128(length)
    total = 48 + len(directory) + len(payload)
    sfnt = 12 + 16 * len(tables) + sum((l + 3) & ~3 for _, l in tables)
    header = struct.pack('>4sIIHHIIHHIIIII', b'wOF2', 0x00010000, total, len(tables), 0,
                         sfnt, len(payload), 1, 0, 0, 0, 0, 0, 0)
    write(os.path.join(SITE, 'fonts', 'inter-subset.4a5b6c7d.woff2'), header + directory + payload)


def random_files():
    write(os.path.join(EDGE, 'random.bin'), os.urandom(20480))
    write(os.path.join(EDGE, 'random.txt'), os.urandom(20480))


if __name__ == '__main__':
    source_map()
    hero_png()
    favicon_ico()
    huge_line_js()
    bad_utf8_css()
    if '--random' in sys.argv[1:]:
        woff2()
        random_files()
