//! nginx in front of a local site's directory: `try_files` over the candidates a request
//! may get (a delta from the dictionary the client holds, then the br, zstd and gzip
//! siblings, then the identity), and maps for what nginx cannot know from a file: each
//! path's `Content-Type`, `Cache-Control`, extra headers, `Vary`, `Use-As-Dictionary`,
//! and which `Available-Dictionary` value names which stored version.
//!
//! The maps come from the manifest at generation time. A stale file never sends a wrong
//! answer: a path it does not list is served as its file with no extra headers, a
//! dictionary it does not list gets no delta, and every candidate is tried only when its
//! file exists. Core nginx only (no brotli or njs module): `Content-Encoding` is added by
//! `add_header` from the suffix of the file `try_files` chose, which is why the location
//! clears `types` and switches nginx's own gzip off.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{EdgeRulesError, EdgeSite, Options};
use crate::pipeline::compress::Encoding;
use crate::pipeline::delta::{DeltaEncoding, use_as_dictionary};
use crate::pipeline::manifest::ManifestEntry;

/// A regex matching an `Accept-Encoding` that lists `coding` by name with `q` > 0.
fn accepts(coding: &str) -> String {
    format!(
        "~*(^|,)[ \\t]*{coding}[ \\t]*(;[ \\t]*q=(1(\\.0{{0,3}})?|0?\\.[0-9]{{0,2}}[1-9][0-9]*)[ \\t]*)?(,|$)"
    )
}

/// An nginx string literal: double-quoted, `"` and `\` escaped; `$` cannot be escaped
/// in nginx strings, so values holding one are refused.
fn quoted(value: &str) -> Option<String> {
    if value.contains('$') || value.chars().any(char::is_control) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// A variable-name part from a site name (`www-2.example` → `www_2_example`).
fn var_part(site: &str) -> String {
    site.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// What the site's `Vary` is for an entry (as the origin sends it).
fn vary(entry: &ManifestEntry) -> &'static str {
    if entry.deltas.is_empty() {
        "accept-encoding"
    } else {
        "accept-encoding, available-dictionary"
    }
}

/// Writes the nginx configuration (for the `http` block) serving `site`.
pub fn render(site: &EdgeSite<'_>, options: &Options) -> Result<String, EdgeRulesError> {
    let root = site.root.ok_or_else(|| EdgeRulesError::NoRoot {
        site: site.name.to_owned(),
    })?;
    let v = format!("edgeship_{}", var_part(site.name));
    let unwritable = |path: &str, what: String| EdgeRulesError::Unwritable {
        edge: "nginx",
        path: path.to_owned(),
        what,
        why: "it holds `$` or a control character",
    };

    // Per-path values, and the dictionaries deltas are made from.
    let mut types = Vec::new();
    let mut cache_control = Vec::new();
    let mut varies = Vec::new();
    let mut offers = Vec::new();
    let mut singles = Vec::new();
    let mut extra: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut held = BTreeSet::new();
    let mut by_extension = BTreeMap::new();
    let mut longest = 0;
    for (path, entry) in &site.manifest.assets {
        let uri = quoted(&format!("/{path}")).ok_or_else(|| unwritable(path, "the path".into()))?;
        longest = longest.max(uri.len());
        let value =
            |what: &str, v: &str| quoted(v).ok_or_else(|| unwritable(path, what.to_owned()));
        let content_type = value("Content-Type", &entry.content_type)?;
        if let Some((_, extension)) = path.rsplit_once('.')
            && !extension.contains('/')
            && extension.chars().all(|c| c.is_ascii_alphanumeric())
        {
            by_extension
                .entry(extension.to_ascii_lowercase())
                .or_insert_with(|| content_type.clone());
        }
        types.push((uri.clone(), content_type));
        cache_control.push((uri.clone(), value("Cache-Control", &entry.cache_control)?));
        varies.push((uri.clone(), quoted(vary(entry)).unwrap_or_default()));
        if let Some(offer) = &entry.dictionary
            && let Some(header) = use_as_dictionary(&offer.match_pattern)
        {
            offers.push((uri.clone(), value("Use-As-Dictionary", &header)?));
        }
        if let Some(encoding) = entry.single {
            singles.push((uri.clone(), encoding.token().to_owned()));
        }
        for (name, header) in &entry.headers {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(EdgeRulesError::Unwritable {
                    edge: "nginx",
                    path: path.clone(),
                    what: format!("the header name `{name}`"),
                    why: "nginx takes header names of letters, digits and `-`",
                });
            }
            extra
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push((uri.clone(), value(name, header)?));
        }
        for delta in &entry.deltas {
            held.insert(delta.from);
        }
    }
    // nginx hashes map keys into buckets that must hold the longest key.
    let bucket = (longest + 2 * std::mem::size_of::<usize>())
        .next_power_of_two()
        .max(64);
    let max_size = (site.manifest.assets.len() * 2)
        .next_power_of_two()
        .max(2048);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# edgeship edge rules for nginx: site `{name}` ({paths} paths), from its manifest.\n\
         # Generated by `edgeship edge-rules --site {name} --for nginx`; include it in the `http`\n\
         # block (e.g. as /etc/nginx/conf.d/edgeship-{name}.conf) and reload nginx.\n\
         #\n\
         # Each request gets what edgeship's origin would send: a dictionary delta (dcz, then\n\
         # dcb) when Available-Dictionary names a version the path has one from, else the\n\
         # br, zstd or gzip sibling the client accepts (listed by name with q > 0), else the\n\
         # file itself, with the path's Content-Type, Cache-Control, headers, Vary and\n\
         # Use-As-Dictionary. Regenerate after deploys that add paths or dictionaries; until\n\
         # then new paths are served as plain files and new dictionaries get no delta —\n\
         # never a wrong answer.",
        name = site.name,
        paths = site.manifest.assets.len()
    );
    let _ = writeln!(
        out,
        "\n# Map keys here are up to {longest} bytes long; drop these two lines if your http block\n\
         # already sets larger values.\n\
         map_hash_bucket_size {bucket};\nmap_hash_max_size {max_size};"
    );

    out.push_str("\n# Codings the client accepts.\n");
    let codings = [
        ("dcz", ""),
        ("dcb", ""),
        ("br", Encoding::Br.suffix()),
        ("zstd", Encoding::Zstd.suffix()),
        ("gzip", Encoding::Gzip.suffix()),
    ];
    for (coding, suffix) in codings {
        let _ = writeln!(
            out,
            "map $http_accept_encoding ${v}_accepts_{coding} {{\n    \"{}\" 1;\n    default 0;\n}}",
            accepts(coding)
        );
        if !suffix.is_empty() {
            let _ = writeln!(
                out,
                "map ${v}_accepts_{coding} ${v}_try_{coding} {{\n    1 \"{suffix}\";\n    default \"/.edgeship-none\";\n}}"
            );
        }
    }

    out.push_str(
        "\n# Available-Dictionary values naming a version some path has a delta from (SHA-256).\n",
    );
    let _ = writeln!(
        out,
        "map $http_available_dictionary ${v}_held {{\n    default \"\";"
    );
    for hash in &held {
        let _ = writeln!(out, "    \":{}:\" {};", hash.base64(), hash.hex());
    }
    out.push_str("}\n");
    for coding in [DeltaEncoding::Dcz, DeltaEncoding::Dcb] {
        let token = coding.token();
        let _ = writeln!(
            out,
            "map \"${v}_accepts_{token}:${v}_held\" ${v}_try_{token} {{\n    \"~^1:([0-9a-f]{{64}})$\" \".$1.{token}\";\n    default \"/.edgeship-none\";\n}}"
        );
    }

    out.push_str("\n# The Content-Encoding of the file try_files chose, from its suffix.\n");
    let _ = writeln!(
        out,
        "map \"$uri|${v}_path\" ${v}_coding {{\n    \"~^(.*)\\.[0-9a-f]{{64}}\\.dcz\\|\\1$\" dcz;\n    \"~^(.*)\\.[0-9a-f]{{64}}\\.dcb\\|\\1$\" dcb;\n    \"~^(.*)\\.br\\|\\1$\" br;\n    \"~^(.*)\\.zst\\|\\1$\" zstd;\n    \"~^(.*)\\.gz\\|\\1$\" gzip;\n    default ${v}_single;\n}}"
    );
    // A map from the request's path to one header's value, `default` for other paths.
    let table =
        |out: &mut String, comment: &str, name: &str, default: &str, rows: &[(String, String)]| {
            let _ = writeln!(
                out,
                "\n# {comment}\nmap ${v}_path ${v}_{name} {{\n    default {default};"
            );
            for (uri, value) in rows {
                let _ = writeln!(out, "    {uri} {value};");
            }
            out.push_str("}\n");
        };
    let none = "\"\"";
    table(
        &mut out,
        "`single:<enc>` paths: the file itself is encoded.",
        "single",
        none,
        &singles,
    );
    let _ = writeln!(
        out,
        "\n# Content-Type by extension, for files the manifest does not list.\nmap ${v}_path ${v}_type_by_extension {{\n    default \"application/octet-stream\";"
    );
    for (extension, content_type) in &by_extension {
        let _ = writeln!(out, "    \"~*\\.{extension}$\" {content_type};");
    }
    out.push_str("}\n");
    let by_extension = format!("${v}_type_by_extension");
    table(
        &mut out,
        "Content-Type per path.",
        "type",
        &by_extension,
        &types,
    );
    table(
        &mut out,
        "Cache-Control per path.",
        "cache_control",
        none,
        &cache_control,
    );
    table(&mut out, "Vary per path.", "vary", none, &varies);
    table(
        &mut out,
        "Use-As-Dictionary per path (RFC 9842).",
        "dictionary",
        none,
        &offers,
    );
    let mut extra_headers = Vec::new();
    for (i, (name, rows)) in extra.iter().enumerate() {
        let var = format!("header_{i}");
        table(
            &mut out,
            &format!("`{name}` per path (rules)."),
            &var,
            none,
            rows,
        );
        extra_headers.push((name.clone(), var));
    }

    let root = root.display().to_string();
    let root = quoted(&root).ok_or_else(|| unwritable("", "the root directory".into()))?;
    let _ = write!(
        out,
        "\nserver {{\n    listen {listen};\n    server_name {server_name};\n    root {root};\n\n    \
         # edgeship's own files (manifest, history, metadata) are not served.\n    \
         location ^~ /.edgeship/ {{\n        return 404;\n    }}\n\n    \
         location / {{\n        \
         # Types come from the maps: try_files may pick `app.js.br`.\n        \
         types {{ }}\n        default_type \"\";\n        \
         # The files are compressed already; nginx must not compress them again.\n        \
         gzip off;\n        \
         set ${v}_path $uri;\n        \
         try_files $uri${v}_try_dcz $uri${v}_try_dcb $uri${v}_try_br $uri${v}_try_zstd $uri${v}_try_gzip $uri $uri/ =404;\n        \
         add_header Content-Type ${v}_type;\n        \
         add_header Content-Encoding ${v}_coding;\n        \
         add_header Cache-Control ${v}_cache_control;\n        \
         add_header Vary ${v}_vary;\n        \
         add_header Use-As-Dictionary ${v}_dictionary;\n",
        listen = options.listen,
        server_name = options.server_name,
    );
    for (name, var) in &extra_headers {
        let _ = writeln!(out, "        add_header {name} ${v}_{var};");
    }
    out.push_str("    }\n}\n");
    Ok(out)
}
