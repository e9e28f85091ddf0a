//! Key naming: every key is `{prefix}:{site}:{name}`, e.g. `edgeship:{www}:manifest`.
//!
//! The braces are a Redis Cluster hash tag: all keys of one site hash to one slot, so
//! multi-key commands (`MGET`, pipelines that must land on one node, scripts) work per
//! site on a cluster. Keys that belong to no site (API keys, the audit stream) are
//! `{prefix}:global:{name}`; they never collide with a site's keys because site keys always
//! carry braces.
//!
//! Site names are escaped so any configured name is safe: bytes outside `[A-Za-z0-9_.-]`
//! become `%XX`. That keeps `{`, `}` (hash tags), `*`, `?`, `[`, `\` (glob patterns) and `:`
//! (the separator) out of the site part, so [`SiteKeys::pattern`] only ever matches that
//! site's keys.
//!
//! [`glob_match`] implements Redis's own glob rules (`SCAN … MATCH`), so the memory store
//! deletes exactly what Redis would.

use std::fmt;

use super::CacheError;

/// Characters allowed in a key prefix: a fixed namespace shared by all replicas.
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        && !prefix.ends_with(':')
}

/// The namespace of one deployment: builds every key and key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    /// The default prefix.
    pub const DEFAULT_PREFIX: &'static str = "edgeship";

    /// A keyspace under `prefix`: 1–64 of `A-Z a-z 0-9 _ - . :`, not ending in `:`.
    pub fn new(prefix: &str) -> Result<Self, CacheError> {
        if !valid_prefix(prefix) {
            return Err(CacheError::InvalidKey {
                key: prefix.into(),
                reason: "a key prefix is 1–64 of A-Z a-z 0-9 _ - . : and does not end in `:`",
            });
        }
        Ok(Self {
            prefix: prefix.into(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of one site: `{prefix}:{site}:…`.
    pub fn site(&self, site: &str) -> SiteKeys {
        let mut base = String::with_capacity(self.prefix.len() + site.len() + 4);
        base.push_str(&self.prefix);
        base.push_str(":{");
        escape_site(site, &mut base);
        base.push_str("}:");
        SiteKeys { base }
    }

    /// Keys that belong to no site: `{prefix}:global:…`.
    pub fn global(&self) -> SiteKeys {
        SiteKeys {
            base: format!("{}:global:", self.prefix),
        }
    }

    /// A pattern matching every key of this keyspace (all sites and global keys).
    pub fn all(&self) -> KeyPattern {
        KeyPattern(format!("{}:*", self.prefix))
    }
}

impl Default for Keyspace {
    fn default() -> Self {
        Self {
            prefix: Self::DEFAULT_PREFIX.into(),
        }
    }
}

fn escape_site(site: &str, out: &mut String) {
    for b in site.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The keys of one site (or of the global namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteKeys {
    base: String,
}

impl SiteKeys {
    /// The key `name` of this site, e.g. `manifest` → `edgeship:{www}:manifest`. `name` may
    /// hold any characters; use `:` to build hierarchies (`job:42`).
    pub fn key(&self, name: &str) -> CacheKey {
        CacheKey(format!("{}{name}", self.base))
    }

    /// A pattern over this site's key names, e.g. `job:*`. `glob` uses Redis glob rules
    /// (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes); the site part is always literal.
    pub fn pattern(&self, glob: &str) -> KeyPattern {
        KeyPattern(format!("{}{glob}", self.base))
    }

    /// A pattern matching every key of this site.
    pub fn all(&self) -> KeyPattern {
        self.pattern("*")
    }

    /// The site's deployed manifest.
    pub fn manifest(&self) -> CacheKey {
        self.key("manifest")
    }

    /// The site's deploy lock (one deploy per site at a time).
    pub fn deploy_lock(&self) -> CacheKey {
        self.key("lock:deploy")
    }

    /// The state of deploy or purge job `id`.
    pub fn job(&self, id: &str) -> CacheKey {
        self.key(&format!("job:{id}"))
    }
}

/// A full cache key. Built by [`SiteKeys::key`]; [`CacheKey::raw`] takes one as is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// A key used exactly as given, outside any keyspace (tests, tools).
    pub fn raw(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CacheKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A glob pattern over full keys (Redis `SCAN MATCH` rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern(String);

impl KeyPattern {
    /// A pattern used exactly as given.
    pub fn raw(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        glob_match(self.0.as_bytes(), key.as_bytes())
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Redis glob matching (`stringmatchlen` in Redis's `util.c`): `*` any run of bytes
/// (including `:` and `/`), `?` one byte, `[abc]`, `[a-z]`, `[^…]` classes, `\x` a literal
/// `x`. Braces are literal. An unterminated `[` class runs to the end of the pattern, as
/// in Redis.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index it covers to).
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    backtrack = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    let (matched, next) = match_class(pattern, p + 1, text[t]);
                    if matched {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last `*` swallow one more byte, or fail.
        match backtrack {
            Some((star_p, star_t)) => {
                p = star_p;
                t = star_t + 1;
                backtrack = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[p]` (just after `[`). Returns whether
/// it matched and the index just after the closing `]` (or the pattern's end).
fn match_class(pattern: &[u8], mut p: usize, c: u8) -> (bool, usize) {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                if pattern[p + 1] == c {
                    matched = true;
                }
                p += 2;
            }
            Some(&start) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                let end = pattern[p + 2];
                let (lo, hi) = if start <= end {
                    (start, end)
                } else {
                    (end, start)
                };
                if (lo..=hi).contains(&c) {
                    matched = true;
                }
                p += 3;
            }
            Some(&literal) => {
                if literal == c {
                    matched = true;
                }
                p += 1;
            }
        }
    }
    (matched != negate, p)
}

/// Escapes every glob metacharacter in `literal`, for patterns built from user text.
pub fn glob_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        glob_match(pattern.as_bytes(), text.as_bytes())
    }

    #[test]
    fn keys_are_namespaced_with_a_hash_tag_per_site() {
        let keys = Keyspace::default();
        assert_eq!(
            keys.site("www").manifest().as_str(),
            "edgeship:{www}:manifest"
        );
        assert_eq!(keys.site("www").job("42").as_str(), "edgeship:{www}:job:42");
        assert_eq!(
            keys.global().key("apikeys").as_str(),
            "edgeship:global:apikeys"
        );
        let custom = Keyspace::new("test-7f3a").unwrap();
        assert_eq!(custom.site("docs").all().as_str(), "test-7f3a:{docs}:*");
    }

    #[test]
    fn site_names_cannot_break_tags_or_patterns() {
        let keys = Keyspace::default();
        assert_eq!(
            keys.site("a}b*c:d").key("x").as_str(),
            "edgeship:{a%7Db%2Ac%3Ad}:x"
        );
        assert_eq!(keys.site("global").key("x").as_str(), "edgeship:{global}:x");
        let star = keys.site("*").all();
        assert!(!star.matches("edgeship:{www}:manifest"));
        assert!(star.matches("edgeship:{%2A}:manifest"));
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(Keyspace::new("edgeship").is_ok());
        assert!(Keyspace::new("team.a:edgeship").is_ok());
        for bad in ["", "a*", "a{b}", "a:", "has space", &"x".repeat(65)] {
            assert!(Keyspace::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn glob_follows_redis_rules() {
        assert!(m("*", ""));
        assert!(m("*", "a:b/c"));
        assert!(m("edgeship:{www}:*", "edgeship:{www}:job:1"));
        assert!(!m("edgeship:{www}:*", "edgeship:{wwww}:job:1"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges work as in Redis");
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("job:*:done", "job:1:2:done"));
        assert!(m("[abc", "b"), "an unterminated class runs to the end");
        assert!(!m("abc", "abcd"));
        assert!(m("a**", "a"));
    }

    proptest! {
        #[test]
        fn an_escaped_literal_matches_only_itself(text in ".{0,20}", other in ".{0,20}") {
            let pattern = glob_escape(&text);
            prop_assert!(m(&pattern, &text));
            prop_assert_eq!(m(&pattern, &other), other == text);
        }

        #[test]
        fn star_patterns_match_like_prefix_and_suffix_checks(prefix in "[a-c:]{0,6}", suffix in "[a-c:]{0,6}", text in "[a-c:]{0,12}") {
            let pattern = format!("{}*{}", glob_escape(&prefix), glob_escape(&suffix));
            let expected = text.len() >= prefix.len() + suffix.len()
                && text.starts_with(&prefix)
                && text.ends_with(&suffix);
            prop_assert_eq!(m(&pattern, &text), expected);
        }
    }
}
