"""schemathesis hooks for edgeship's API run (tests/reliability/schemathesis.rs).

The OpenAPI document describes the shape of requests, not all that makes them
meaningful: any non-empty bytes match the deploy upload's schema, any non-empty string a
purge pattern's or an analytics time's. So that valid ("positive") cases test the paths
that do work, they are sent with the site that exists, a real tar.gz for deploys,
patterns that parse for purges, a real CDN log line for log uploads and times that parse
(in order) for analytics. Invalid ("negative") cases are left as generated.

Archives and logs are sent as bytes: the upload media types reuse schemathesis's
serializer for `application/octet-stream`.
"""

import gzip
import io
import itertools
import json
import sys
import tarfile
import time

import schemathesis

schemathesis.serializer.alias(
    ["application/gzip", "application/x-tar", "application/zstd", "application/x-ndjson"],
    "application/octet-stream",
)

if sys.version_info < (3, 12):
    # CPython 3.11's ast.parse can raise "SystemError: AST constructor recursion depth
    # mismatch" when called deep in a recursion (python/cpython#106905); hypothesis parses
    # a lambda's source only to describe a strategy in messages. Describe it without that.
    import hypothesis.internal.lambda_sources as _lambda_sources

    _describe = _lambda_sources.lambda_description

    def _lambda_description(f):
        try:
            return _describe(f)
        except SystemError:
            return "lambda"

    _lambda_sources.lambda_description = _lambda_description

_COUNTER = itertools.count()
_PATTERNS = [
    ["/index.html"],
    ["/assets/**/*.css", "/"],
    ["/blog/"],
    ["tag:product-42"],
    ["/{a,b}.js", "/x[0-9].js"],
]


def _archive(n):
    """A small site as a tar.gz; one file changes with `n`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {
            "index.html": f"<!doctype html><title>run</title><p>upload {n}</p>",
            "assets/app.css": "body { color: #333; }\n" * 20,
            "assets/app.js": "export const n = %d;\n" % n,
        }
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _log(n):
    """One Cloudflare Logpush line, gzip'd, unique per call (a file sent twice is a 409)."""
    line = json.dumps(
        {
            "EdgeStartTimestamp": (int(time.time()) - 60) * 1_000_000_000 + n,
            "ClientRequestPath": "/index.html",
            "EdgeResponseStatus": 200,
            "EdgeResponseBytes": 1000 + n,
            "CacheCacheStatus": "hit",
        }
    )
    return gzip.compress((line + "\n").encode())


def _positive(case):
    """Whether every part of the case was generated valid: a case with one invalid part
    (say its query) must stay refused, so its body is left as generated too."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return False
    return all(component.mode.is_positive for component in meta.components.values())


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """Sends a valid case's body, site and times as above. Bodies go in `kwargs`, which
    the request is built from, not into the case: schemathesis revalidates a case whose
    body a hook edited and took a real archive for an invalid binary body."""
    if not _positive(case):
        return
    n = next(_COUNTER)
    if "site" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "site": "default"}
    if case.path == "/v1/analytics" and case.query:
        now = int(time.time())
        times = {
            "from": [str(now - 3 * 86400), time.strftime("%Y-%m-%d", time.gmtime(now - 86400))],
            "to": [str(now), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))],
        }
        params = {name: values[n % 2] for name, values in times.items() if name in case.query}
        if "site" in case.query:
            params["site"] = "default"
        case.query = {**case.query, **params}
    if case.method.upper() != "POST":
        return
    body = None
    if case.path == "/v1/sites/{site}/deploys":
        body = _archive(n)
    elif case.path == "/v1/sites/{site}/logs":
        body = _log(n)
    elif case.path == "/v1/sites/{site}/purges" and isinstance(case.body, dict):
        kwargs["json"] = {**case.body, "patterns": _PATTERNS[n % len(_PATTERNS)]}
    if body is not None:
        # Read by its magic bytes, whichever upload media type the case names.
        kwargs["data"] = body
