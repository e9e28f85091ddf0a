//! Purge patterns: what users type to say which cached paths go.
//!
//! | pattern | meaning |
//! |---|---|
//! | `/index.html` | exactly this path |
//! | `/` | the home page (`/` and `/index.html`) |
//! | `/blog/` | every path under this prefix |
//! | `/assets/**/*.css`, `/img/?.png`, `/{a,b}.js`, `/x[0-9].js` | a glob (`*` within a segment, `**` across segments) |
//! | `tag:product-42` | every path deployed with this tag (tags come from rules) |
//! | `/*` or `/**` | everything (callers require confirmation) |
//!
//! Parsing gives precise errors: the byte position and the reason, so an API can answer
//! 400 and the CLI can point at the character.

use globset::{GlobBuilder, GlobMatcher};

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 2048;

/// A parsed purge pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// One path (`/index.html`).
    Exact(String),
    /// Every path under a prefix ending in `/` (`/blog/`).
    Prefix(String),
    /// A glob over paths.
    Glob {
        /// The pattern as written.
        source: String,
        /// The compiled matcher (over paths without the leading `/`).
        matcher: GlobMatcher,
    },
    /// Every path deployed with this tag.
    Tag(String),
    /// Everything.
    Everything,
}

/// Why a pattern is not valid, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad purge pattern `{}`: at byte {position}: {reason}", shown(.pattern))]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// Byte offset of the problem.
    pub position: usize,
    /// What is wrong.
    pub reason: String,
}

/// The pattern for messages: control characters escaped, long ones shortened.
fn shown(pattern: &str) -> String {
    let escaped: String = pattern.escape_debug().collect();
    if escaped.chars().count() > 80 {
        format!("{}…", escaped.chars().take(80).collect::<String>())
    } else {
        escaped
    }
}

impl Pattern {
    /// Parses one pattern.
    pub fn parse(input: &str) -> Result<Self, PatternError> {
        let error = |position: usize, reason: &str| PatternError {
            pattern: input.to_string(),
            position,
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(error(0, "empty pattern"));
        }
        if input.len() > MAX_PATTERN_BYTES {
            return Err(error(
                input.floor_char_boundary(MAX_PATTERN_BYTES),
                &format!(
                    "pattern is {} bytes long (limit {MAX_PATTERN_BYTES})",
                    input.len()
                ),
            ));
        }
        if let Some((position, c)) = input.char_indices().find(|(_, c)| c.is_control()) {
            return Err(error(
                position,
                &format!("control character {:?} is not allowed", c),
            ));
        }
        if let Some(tag) = input.strip_prefix("tag:") {
            if tag.is_empty() {
                return Err(error(4, "empty tag name"));
            }
            if let Some((position, _)) = tag
                .char_indices()
                .find(|(_, c)| c.is_whitespace() || *c == ',')
            {
                return Err(error(
                    4 + position,
                    "tag names cannot contain spaces or commas",
                ));
            }
            return Ok(Self::Tag(tag.to_string()));
        }
        if !input.starts_with('/') {
            return Err(error(
                0,
                "a path pattern starts with `/` (or use `tag:NAME`)",
            ));
        }
        let mut offset = 0;
        for segment in input.split('/') {
            if segment == ".." || segment == "." {
                return Err(error(offset, "`.` and `..` segments are not allowed"));
            }
            if let Some(at) = segment.find("**")
                && segment != "**"
            {
                return Err(error(
                    offset + at,
                    "`**` must be a whole path segment, like `/a/**/b`",
                ));
            }
            offset += segment.len() + 1;
        }
        if input == "/*" || input == "/**" {
            return Ok(Self::Everything);
        }
        if input == "/" {
            // The home page, not a prefix of the whole site.
            return Ok(Self::Exact(input.to_string()));
        }
        if !input.contains(['*', '?', '[', ']', '{', '}']) {
            return Ok(if input.ends_with('/') {
                Self::Prefix(input.to_string())
            } else {
                Self::Exact(input.to_string())
            });
        }
        check_brackets(input).map_err(|(position, reason)| error(position, &reason))?;
        let glob = GlobBuilder::new(&input[1..])
            .literal_separator(true)
            .build()
            .map_err(|e| error(glob_error_position(input, e.kind()), &e.kind().to_string()))?;
        Ok(Self::Glob {
            source: input.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether a deployed asset (its path without the leading `/`, and its tags) matches.
    pub fn matches(&self, path: &str, tags: &[String]) -> bool {
        match self {
            Self::Exact(exact) if exact == "/" => path == "index.html",
            Self::Exact(exact) => exact[1..] == *path,
            Self::Prefix(prefix) => path.starts_with(&prefix[1..]),
            Self::Glob { matcher, .. } => matcher.is_match(path),
            Self::Tag(tag) => tags.iter().any(|t| t == tag),
            Self::Everything => true,
        }
    }
}

/// Where in `input` (the whole pattern, leading `/` included) globset's error is: the `[`
/// of a bad class, the `{` of bad alternatives, the last character of a dangling escape.
fn glob_error_position(input: &str, kind: &globset::ErrorKind) -> usize {
    use globset::ErrorKind as K;
    match kind {
        K::InvalidRange(..) => classes(input)
            .into_iter()
            .find(|&(open, close)| has_invalid_range(&input[open + 1..close]))
            .map_or_else(|| input.find('[').unwrap_or(0), |(open, _)| open),
        K::UnclosedClass => input.find('[').unwrap_or(0),
        K::UnopenedAlternates => unopened_brace(input)
            .or_else(|| input.find('}'))
            .unwrap_or(0),
        K::UnclosedAlternates | K::NestedAlternates => input.find('{').unwrap_or(0),
        K::DanglingEscape => input.len().saturating_sub(1),
        _ => 0,
    }
}

/// The character classes of a glob as globset reads them: the byte range from each `[` to
/// its closing `]` (a `]` first in the class, after an optional `!` or `^`, is a member,
/// not the end; `\` escapes the next character outside classes).
fn classes(input: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' => {
                chars.next_if(|&(_, c)| c == '!' || c == '^');
                chars.next_if(|&(_, c)| c == ']');
                if let Some((close, _)) = chars.find(|&(_, c)| c == ']') {
                    found.push((at, close));
                }
            }
            _ => {}
        }
    }
    found
}

/// Whether a class's text (between its `[` and `]`) holds a range globset refuses. Read
/// as globset reads it: after an optional `!` or `^`, a first `]` or `-` is a member, and
/// a `-` after a range extends it (`e-g-a` is the range `e-a`, whose text is nowhere).
fn has_invalid_range(class: &str) -> bool {
    let members = class.strip_prefix(['!', '^']).unwrap_or(class);
    let mut last: Option<char> = None;
    let mut in_range = false;
    for (i, c) in members.chars().enumerate() {
        match (c, last) {
            ('-', Some(_)) if i > 0 && !in_range => in_range = true,
            (c, Some(from)) if in_range => {
                if c < from {
                    return true;
                }
                in_range = false;
            }
            (c, _) => last = Some(c),
        }
    }
    false
}

/// The first `}` that closes no `{`, as globset reads the glob (escapes and classes are
/// literal text).
fn unopened_brace(input: &str) -> Option<usize> {
    let classes = classes(input);
    let mut depth = 0usize;
    let mut chars = input.char_indices();
    while let Some((at, c)) = chars.next() {
        if classes
            .iter()
            .any(|&(open, close)| (open..=close).contains(&at))
        {
            continue;
        }
        match c {
            '\\' => {
                chars.next();
            }
            '{' => depth += 1,
            '}' if depth == 0 => return Some(at),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Finds unbalanced `[`/`]` and `{`/`}`, pointing at the one left open (or closed too often).
fn check_brackets(input: &str) -> Result<(), (usize, String)> {
    let mut open_class: Option<usize> = None;
    let mut open_alternates: Vec<usize> = Vec::new();
    for (position, c) in input.char_indices() {
        match c {
            '[' if open_class.is_none() => open_class = Some(position),
            ']' if open_class.is_some() => open_class = None,
            ']' => return Err((position, "`]` without a matching `[`".into())),
            '{' if open_class.is_none() => open_alternates.push(position),
            '}' if open_class.is_none() && open_alternates.pop().is_none() => {
                return Err((position, "`}` without a matching `{`".into()));
            }
            _ => {}
        }
    }
    if let Some(position) = open_class {
        return Err((
            position,
            "`[` is never closed (a character class needs `]`)".into(),
        ));
    }
    if let Some(position) = open_alternates.last() {
        return Err((
            *position,
            "`{` is never closed (alternatives need `}`)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(input: &str) -> PatternError {
        Pattern::parse(input).unwrap_err()
    }

    #[test]
    fn bad_classes_point_at_their_bracket() {
        assert_eq!(err("/a[z-a].js").position, 2, "{}", err("/a[z-a].js"));
        assert_eq!(err("/x/[!]").position, 3, "{}", err("/x/[!]"));
        assert_eq!(err("/ok[a-c]/b[z-a]").position, 10);
        // The range's text also appears before the class, and the class starts with `]`
        // (found by cargo-fuzz: fuzz/regressions/pattern/).
        assert_eq!(err("/--[]za/--[]za").position, 3);
        assert_eq!(err("/z-a/[z-a]").position, 5);
        // A `-` after a range extends it: `e-g-a` is refused as `e-a`, text found nowhere,
        // in the second class, not the first.
        let e = err("/a[b-c]/[e-g-a]");
        assert_eq!(
            (e.position, e.reason.as_str()),
            (8, "invalid range; 'e' > 'a'")
        );
        assert_eq!(err("/\\[x/[!c-e-a]").position, 5);
        // A `}` that closes nothing once escapes and classes are read as globset reads them.
        assert_eq!(err("/a\\[}]").position, 4, "{}", err("/a\\[}]"));
        assert_eq!(err("/{a}\\{b}").position, 7);
    }

    #[test]
    fn kinds_are_recognised() {
        assert!(
            matches!(Pattern::parse("/index.html"), Ok(Pattern::Exact(p)) if p == "/index.html")
        );
        assert!(matches!(Pattern::parse("/blog/"), Ok(Pattern::Prefix(p)) if p == "/blog/"));
        assert!(matches!(
            Pattern::parse("/assets/**/*.css"),
            Ok(Pattern::Glob { .. })
        ));
        assert!(
            matches!(Pattern::parse("tag:product-42"), Ok(Pattern::Tag(t)) if t == "product-42")
        );
        assert!(matches!(Pattern::parse("/*"), Ok(Pattern::Everything)));
        assert!(matches!(Pattern::parse("/**"), Ok(Pattern::Everything)));
        let home = Pattern::parse("/").unwrap();
        assert!(
            matches!(&home, Pattern::Exact(p) if p == "/"),
            "`/` is the home page"
        );
        assert!(home.matches("index.html", &[]) && !home.matches("blog/index.html", &[]));
    }

    #[test]
    fn bad_patterns_say_where_and_why() {
        let e = err("/assets/[ab.js");
        assert_eq!(
            (e.position, e.reason.as_str()),
            (8, "`[` is never closed (a character class needs `]`)")
        );
        assert_eq!(err("").reason, "empty pattern");
        let e = err("/a/**foo");
        assert_eq!(
            (e.position, e.reason.as_str()),
            (3, "`**` must be a whole path segment, like `/a/**/b`")
        );
        let e = err("/a\u{7}b");
        assert_eq!(e.position, 2);
        assert!(e.to_string().contains("control character '\\u{7}'"), "{e}");
        let e = err(&format!("/{}", "a".repeat(10 * 1024)));
        assert!(
            e.reason.starts_with("pattern is 10241 bytes long"),
            "{}",
            e.reason
        );
        assert!(
            e.to_string().len() < 300,
            "the message does not repeat 10 KB"
        );
        // The limit falls inside a two-byte character: the position stays on a boundary.
        assert_eq!(err(&format!("/{}", "é".repeat(1100))).position, 2047);
        assert_eq!(err("blog/").position, 0);
        assert_eq!(
            err("/a/{b,c.js").reason,
            "`{` is never closed (alternatives need `}`)"
        );
        assert_eq!(
            err("/a/../b").reason,
            "`.` and `..` segments are not allowed"
        );
        assert_eq!(err("tag:").reason, "empty tag name");
        assert_eq!(err("tag:a b").position, 5);
    }

    #[test]
    fn matching_follows_the_kind() {
        let tags = vec!["sale".to_string()];
        assert!(
            Pattern::parse("/blog/")
                .unwrap()
                .matches("blog/post/index.html", &[])
        );
        assert!(
            !Pattern::parse("/blog/")
                .unwrap()
                .matches("blogroll.html", &[])
        );
        let css = Pattern::parse("/assets/**/*.css").unwrap();
        assert!(css.matches("assets/a/b/site.css", &[]) && css.matches("assets/site.css", &[]));
        assert!(!css.matches("assets/site.js", &[]));
        assert!(
            !Pattern::parse("/*.css").unwrap().matches("a/b.css", &[]),
            "`*` stays in one segment"
        );
        assert!(Pattern::parse("tag:sale").unwrap().matches("x", &tags));
        assert!(
            Pattern::parse("/index.html")
                .unwrap()
                .matches("index.html", &[])
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(input in "\\PC{0,64}") {
            let _ = Pattern::parse(&input);
        }

        #[test]
        fn an_exact_pattern_matches_exactly_its_path(path in "[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}", other in "[a-z0-9]{1,8}") {
            prop_assume!(!path.split('/').any(|s| s == "." || s == ".."));
            let pattern = Pattern::parse(&format!("/{path}")).unwrap();
            prop_assert!(pattern.matches(&path, &[]));
            let longer = format!("{}{}", path, other);
            prop_assert!(!pattern.matches(&longer, &[]));
        }
    }
}
