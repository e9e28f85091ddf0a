//! Rules: headers and processing chosen by path pattern, first match wins.
//!
//! A site's own rules are tried in config order; the first whose pattern matches decides
//! every field it sets. Fields it leaves unset come from the built-in defaults
//! (`config/default-rules.toml`, also first match wins): fingerprinted names are cached
//! for a year as immutable, HTML is revalidated on every request, everything else gets a
//! short max-age.
//!
//! Patterns are globs over the public path (`/assets/**/*.css`; a leading `/` is
//! optional). A pattern without `/` matches the file name at any depth (`*.html`), like
//! `.gitignore`. `*` stays inside one path segment, `**` crosses segments.

use std::collections::BTreeMap;

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use super::classify::AssetKind;
use super::compress::Encoding;

/// The built-in default rules, applied after a site's own rules.
pub const DEFAULT_RULES_TOML: &str = include_str!("../../config/default-rules.toml");

/// One rule as written in config (`[[sites.NAME.rules]]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Glob over the public path.
    pub pattern: String,
    /// When set, the rule only matches names that are (or are not) fingerprinted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprinted: Option<bool>,
    /// `Cache-Control` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Content-Type` override (otherwise guessed from the extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Extra response headers stored with the object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Variants to produce (empty list: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encodings: Option<Vec<Encoding>>,
    /// Turn minification on or off for matching paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minify: Option<bool>,
    /// Tags for purging by tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// How matching assets are stored for the edge: `"variants"` (the default: the
    /// identity plus sibling objects per encoding, chosen by edgeship's origin, nginx or
    /// an edge rule) or `"single:br"` / `"single:gzip"` / `"single:zstd"` (one object at
    /// the path, stored encoded, for CDNs that cannot choose among stored variants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Offer matching assets as compression dictionaries (RFC 9842): `false` never,
    /// `true` also for kinds not offered by default (HTML), or a `Use-As-Dictionary`
    /// match pattern (`"/assets/app.*.js"`) instead of the derived one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<DictionaryRule>,
}

/// How an asset's encodings are stored (a rule's `strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Strategy {
    /// The identity at the path plus one sibling object per kept variant.
    #[default]
    Variants,
    /// One object at the path holding this encoding (`Content-Encoding` set), served to
    /// every client: what s3deploy and hugo do with gzip. Opt-in only, since a client
    /// that does not accept the encoding gets it anyway from a plain object store.
    Single(Encoding),
}

impl TryFrom<String> for Strategy {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "variants" => Ok(Self::Variants),
            "single:br" => Ok(Self::Single(Encoding::Br)),
            "single:gzip" => Ok(Self::Single(Encoding::Gzip)),
            "single:zstd" => Ok(Self::Single(Encoding::Zstd)),
            other => Err(format!(
                "unknown strategy `{other}` (variants, single:br, single:gzip, single:zstd)"
            )),
        }
    }
}

impl From<Strategy> for String {
    fn from(strategy: Strategy) -> Self {
        match strategy {
            Strategy::Variants => "variants".into(),
            Strategy::Single(encoding) => format!("single:{}", encoding.token()),
        }
    }
}

/// A rule's `dictionary` setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DictionaryRule {
    /// On (for any compressible kind) or off.
    Enabled(bool),
    /// On, with this `match` pattern (a URL path pattern starting with `/`).
    Match(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultRulesFile {
    rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    matcher: GlobMatcher,
    config: RuleConfig,
}

impl CompiledRule {
    fn matches(&self, path: &str, fingerprinted: bool) -> bool {
        self.config
            .fingerprinted
            .is_none_or(|want| want == fingerprinted)
            && self.matcher.is_match(path)
    }
}

/// What the rules decided for one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRule {
    /// `Cache-Control`.
    pub cache_control: String,
    /// `Content-Type`.
    pub content_type: String,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Variants to produce; `None` means the pipeline default.
    #[serde(skip)]
    pub encodings: Option<Vec<Encoding>>,
    /// Minification switch; `None` means the pipeline default.
    #[serde(skip)]
    pub minify: Option<bool>,
    /// Purge tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The dictionary setting; `None` means the default for the asset's kind.
    #[serde(skip)]
    pub dictionary: Option<DictionaryRule>,
    /// How the encodings are stored.
    #[serde(skip)]
    pub strategy: Strategy,
}

/// A rule pattern (or `pipeline.exclude` glob) that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The pattern is empty (or only `/`).
    #[error("pattern `{0}` is empty")]
    EmptyPattern(String),
    /// The glob does not parse.
    #[error("bad pattern `{pattern}`: {message}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What globset says.
        message: String,
    },
    /// The built-in default rules do not parse (a build defect).
    #[error("built-in default rules: {0}")]
    Defaults(String),
}

/// A site's rules followed by the built-in defaults, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    site: Vec<CompiledRule>,
    defaults: Vec<CompiledRule>,
    fingerprint: String,
}

impl RuleSet {
    /// Compiles a site's rules; errors name the bad pattern.
    pub fn new(site_rules: &[RuleConfig]) -> Result<Self, RuleError> {
        let defaults: DefaultRulesFile =
            toml::from_str(DEFAULT_RULES_TOML).map_err(|e| RuleError::Defaults(e.to_string()))?;
        // Rules are plain strings, maps and options: serialising them cannot fail.
        let fingerprint = serde_json::to_string(site_rules).unwrap_or_default();
        Ok(Self {
            site: compile(site_rules)?,
            defaults: compile(&defaults.rules)?,
            fingerprint,
        })
    }

    /// A string that changes whenever the site's rules change (for cache keys).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Decides headers and processing for a public path (`assets/app.js`, no leading `/`).
    pub fn resolve(&self, path: &str, kind: AssetKind) -> ResolvedRule {
        let fingerprinted = is_fingerprinted(path);
        let site = self
            .site
            .iter()
            .find(|r| r.matches(path, fingerprinted))
            .map(|r| &r.config);
        let default = self
            .defaults
            .iter()
            .find(|r| r.matches(path, fingerprinted))
            .map(|r| &r.config);
        let pick =
            |f: fn(&RuleConfig) -> Option<String>| site.and_then(f).or_else(|| default.and_then(f));
        ResolvedRule {
            cache_control: pick(|r| r.cache_control.clone())
                .unwrap_or_else(|| "public, max-age=300".into()),
            content_type: pick(|r| r.content_type.clone())
                .unwrap_or_else(|| content_type_for(path, kind)),
            headers: site.map(|r| r.headers.clone()).unwrap_or_default(),
            encodings: site.and_then(|r| r.encodings.clone()),
            minify: site.and_then(|r| r.minify),
            tags: site.map(|r| r.tags.clone()).unwrap_or_default(),
            dictionary: site.and_then(|r| r.dictionary.clone()),
            strategy: site.and_then(|r| r.strategy).unwrap_or_default(),
        }
    }
}

fn compile(rules: &[RuleConfig]) -> Result<Vec<CompiledRule>, RuleError> {
    rules
        .iter()
        .map(|rule| {
            if let Some(DictionaryRule::Match(pattern)) = &rule.dictionary {
                check_dictionary_match(pattern)?;
            }
            Ok(CompiledRule {
                matcher: glob(&rule.pattern)?.compile_matcher(),
                config: rule.clone(),
            })
        })
        .collect()
}

/// Checks a rule's `dictionary` match pattern: a URL path (`/` first) of printable
/// ASCII without `"`, which browsers accept in `Use-As-Dictionary`.
fn check_dictionary_match(pattern: &str) -> Result<(), RuleError> {
    let fine = pattern.starts_with('/')
        && pattern.len() <= 1024
        && pattern
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"');
    if fine {
        Ok(())
    } else {
        Err(RuleError::BadPattern {
            pattern: pattern.to_string(),
            message: "a dictionary match must be a URL path starting with `/`, in printable ASCII without `\"`".into(),
        })
    }
}

/// Compiles one path glob with edgeship's conventions (see the module docs).
pub fn glob(pattern: &str) -> Result<Glob, RuleError> {
    let trimmed = pattern.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(RuleError::EmptyPattern(pattern.to_string()));
    }
    let full = if trimmed.contains('/') {
        trimmed.to_string()
    } else {
        format!("**/{trimmed}")
    };
    GlobBuilder::new(&full)
        .literal_separator(true)
        .build()
        .map_err(|e| RuleError::BadPattern {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })
}

/// Compiles a list of globs into one set (used for `pipeline.exclude`).
pub fn compile_globs(patterns: &[String]) -> Result<GlobSet, RuleError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(glob(pattern)?);
    }
    builder.build().map_err(|e| RuleError::BadPattern {
        pattern: patterns.join(", "),
        message: e.to_string(),
    })
}

/// Whether a file name carries a content hash (`app.3f9c2a1b.js`, `main-4f2a9c1d.css`,
/// `chunk.a1b2c3d4e5f6.js`), so it can be cached forever.
///
/// Deliberately conservative: a false positive would make a changing file immutable in
/// browsers for a year, a false negative only costs a revalidation. A part counts as a
/// hash when it is 8+ hex digits with at least one digit and one letter, or 16+ hex
/// digits, or 8–32 base64url characters mixing lower case, upper case and digits.
pub fn is_fingerprinted(path: &str) -> bool {
    fingerprint_span(path).is_some()
}

/// The byte range of the content hash in `path`'s file name (see [`is_fingerprinted`]),
/// e.g. `3f9c2a1b` in `assets/app.3f9c2a1b.js`.
pub fn fingerprint_span(path: &str) -> Option<std::ops::Range<usize>> {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let name = &path[name_start..];
    let (stem, _ext) = name.rsplit_once('.')?;
    // The parts after the first separator, then the first `.`-part when it is long.
    let mut start = 0;
    for (i, part) in stem.split(['.', '-', '_', '~']).enumerate() {
        if i > 0 && is_hash_like(part) {
            return Some(name_start + start..name_start + start + part.len());
        }
        start += part.len() + 1;
    }
    let first = stem.split('.').next().unwrap_or(stem);
    (first.len() >= 16 && is_hash_like(first)).then(|| name_start..name_start + first.len())
}

/// The name shared by every version of an asset: its path with the content hash replaced
/// by `*` (`assets/app.*.js`), or the path itself when it carries no hash. Versions of one
/// asset are found by it, and it is the `Use-As-Dictionary` match of the asset.
pub fn version_family(path: &str) -> String {
    match fingerprint_span(path) {
        Some(span) => format!("{}*{}", &path[..span.start], &path[span.end..]),
        None => path.to_string(),
    }
}

fn is_hash_like(part: &str) -> bool {
    let len = part.len();
    let hex = part.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = part.bytes().any(|b| b.is_ascii_digit());
    let letters = part.bytes().any(|b| b.is_ascii_alphabetic());
    if hex && (len >= 16 || (len >= 8 && digits && letters)) {
        return true;
    }
    let base64url = part.bytes().all(|b| b.is_ascii_alphanumeric());
    let lower = part.bytes().any(|b| b.is_ascii_lowercase());
    let upper = part.bytes().any(|b| b.is_ascii_uppercase());
    base64url && (8..=32).contains(&len) && lower && upper && digits
}

/// Content types that `mime_guess` gets wrong or that need a charset for the web.
const CONTENT_TYPES: &[(&str, &str)] = &[
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("cjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("svg", "image/svg+xml"),
    ("txt", "text/plain; charset=utf-8"),
    ("xml", "application/xml"),
    ("wasm", "application/wasm"),
    ("woff2", "font/woff2"),
    ("woff", "font/woff"),
    ("avif", "image/avif"),
];

/// The `Content-Type` for a path: the table above, then `mime_guess`, then the kind.
pub fn content_type_for(path: &str, kind: AssetKind) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    if let Some((_, ext)) = name.rsplit_once('.') {
        let ext = ext.to_ascii_lowercase();
        if let Some((_, ct)) = CONTENT_TYPES.iter().find(|(e, _)| *e == ext) {
            return (*ct).to_string();
        }
        if let Some(mime) = mime_guess::from_ext(&ext).first() {
            let text = mime.type_() == mime_guess::mime::TEXT;
            return if text {
                format!("{mime}; charset=utf-8")
            } else {
                mime.to_string()
            };
        }
    }
    match kind {
        AssetKind::Html => "text/html; charset=utf-8",
        AssetKind::Svg => "image/svg+xml",
        AssetKind::Text => "text/plain; charset=utf-8",
        AssetKind::Js => "text/javascript; charset=utf-8",
        AssetKind::Css => "text/css; charset=utf-8",
        AssetKind::Json => "application/json",
        _ => "application/octet-stream",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cache_fingerprinted_names_forever_and_revalidate_html() {
        let rules = RuleSet::new(&[]).unwrap();
        let js = rules.resolve("assets/app.3f9c2a1b.js", AssetKind::Js);
        assert_eq!(js.cache_control, "public, max-age=31536000, immutable");
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        let html = rules.resolve("blog/index.html", AssetKind::Html);
        assert_eq!(html.cache_control, "public, max-age=0, must-revalidate");
        let other = rules.resolve("robots.txt", AssetKind::Text);
        assert_eq!(other.cache_control, "public, max-age=300");
    }

    #[test]
    fn first_matching_site_rule_wins_and_unset_fields_fall_back() {
        let rules = RuleSet::new(&[
            RuleConfig {
                pattern: "/assets/**/*.css".into(),
                tags: vec!["styles".into()],
                minify: Some(false),
                ..Default::default()
            },
            RuleConfig {
                pattern: "*.css".into(),
                cache_control: Some("no-store".into()),
                ..Default::default()
            },
        ])
        .unwrap();
        let css = rules.resolve("assets/x/site.5b6c7d8e.css", AssetKind::Css);
        assert_eq!(css.tags, vec!["styles".to_string()]);
        assert_eq!(css.minify, Some(false));
        assert_eq!(css.cache_control, "public, max-age=31536000, immutable");
        let other = rules.resolve("deep/print.css", AssetKind::Css);
        assert_eq!(
            other.cache_control, "no-store",
            "name-only patterns match at any depth"
        );
        assert!(other.tags.is_empty());
    }

    #[test]
    fn fingerprint_detection_is_conservative() {
        for yes in [
            "app.3f9c2a1b.js",
            "main-4f2a9c1d.css",
            "index-Dx3kP9aQ.js",
            "0123456789abcdef0123.js",
            "a.b/c.1a2b3c4d5e6f.woff2",
        ] {
            assert!(is_fingerprinted(yes), "{yes}");
        }
        for no in [
            "app.js",
            "report-20231101.pdf",
            "main-deadbeef.css",
            "MyComponent.js",
            "index-Homepage.js",
            "about.html",
        ] {
            assert!(!is_fingerprinted(no), "{no}");
        }
    }

    #[test]
    fn versions_of_a_fingerprinted_name_share_a_family() {
        assert_eq!(version_family("assets/app.3f9c2a1b.js"), "assets/app.*.js");
        assert_eq!(version_family("assets/app.9d8e7f6a.js"), "assets/app.*.js");
        assert_eq!(version_family("main-4f2a9c1d.css"), "main-*.css");
        assert_eq!(
            version_family("a.b/0123456789abcdef0123.js"),
            "a.b/*.js",
            "a long hash as the whole stem"
        );
        assert_eq!(version_family("assets/legacy.js"), "assets/legacy.js");
        assert_eq!(version_family("x.1a2b3c4d/app.js"), "x.1a2b3c4d/app.js");
    }

    #[test]
    fn strategies_parse_from_their_names() {
        let rule: RuleConfig =
            toml::from_str("pattern = \"*.js\"\nstrategy = \"single:gzip\"").unwrap();
        assert_eq!(rule.strategy, Some(Strategy::Single(Encoding::Gzip)));
        let rules = RuleSet::new(&[rule]).unwrap();
        assert_eq!(
            rules.resolve("a.js", AssetKind::Js).strategy,
            Strategy::Single(Encoding::Gzip)
        );
        assert_eq!(
            rules.resolve("a.css", AssetKind::Css).strategy,
            Strategy::Variants
        );
        let err = toml::from_str::<RuleConfig>("pattern = \"*\"\nstrategy = \"single:lz4\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("single:lz4"), "{err}");
        assert_eq!(String::from(Strategy::Single(Encoding::Br)), "single:br");
    }

    #[test]
    fn bad_patterns_are_named() {
        let err = RuleSet::new(&[RuleConfig {
            pattern: "assets/[".into(),
            ..Default::default()
        }])
        .unwrap_err()
        .to_string();
        assert!(err.contains("assets/["), "{err}");
        assert!(glob("/").is_err());
    }
}
