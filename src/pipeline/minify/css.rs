//! CSS minification with `lightningcss`.
//!
//! Without browser targets modern syntax (nesting, custom properties) is kept as written;
//! with targets (`pipeline.css_targets`) lightningcss lowers what those browsers lack.
//! lightningcss writes raw UTF-8 and may drop `@charset`, which is why CSS is always
//! served as `text/css; charset=utf-8`.

use std::collections::BTreeMap;

use lightningcss::printer::PrinterOptions;
use lightningcss::stylesheet::{MinifyOptions, ParserOptions, StyleSheet};
use lightningcss::targets::{Browsers, Targets};

use super::MinifyError;

/// Browser names lightningcss understands.
const BROWSERS: [&str; 9] = [
    "android", "chrome", "edge", "firefox", "ie", "ios_saf", "opera", "safari", "samsung",
];

/// A `pipeline.css_targets` entry lightningcss cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Not a browser lightningcss knows.
    #[error("unknown browser `{0}` (known: {known})", known = BROWSERS.join(", "))]
    UnknownBrowser(String),
    /// The version is not `major[.minor[.patch]]`.
    #[error("`{browser} = \"{version}\"`: expected a version like \"15.4\"")]
    BadVersion {
        /// The browser.
        browser: String,
        /// What was given.
        version: String,
    },
}

/// Validates `pipeline.css_targets` (`{ chrome = "100", safari = "15.4" }`) into a sorted
/// list of (browser, version) pairs.
pub fn parse_targets(map: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, TargetError> {
    for (browser, version) in map {
        if !BROWSERS.contains(&browser.as_str()) {
            return Err(TargetError::UnknownBrowser(browser.clone()));
        }
        encode_version(version).ok_or_else(|| TargetError::BadVersion {
            browser: browser.clone(),
            version: version.clone(),
        })?;
    }
    Ok(map.iter().map(|(b, v)| (b.clone(), v.clone())).collect())
}

/// lightningcss encodes versions as `major << 16 | minor << 8 | patch`.
fn encode_version(version: &str) -> Option<u32> {
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() || major > 255 || minor > 255 || patch > 255 {
        return None;
    }
    Some(major << 16 | minor << 8 | patch)
}

fn targets(pairs: &[(String, String)]) -> Targets {
    if pairs.is_empty() {
        return Targets::default();
    }
    let mut browsers = Browsers::default();
    for (browser, version) in pairs {
        let version = encode_version(version);
        let slot = match browser.as_str() {
            "android" => &mut browsers.android,
            "chrome" => &mut browsers.chrome,
            "edge" => &mut browsers.edge,
            "firefox" => &mut browsers.firefox,
            "ie" => &mut browsers.ie,
            "ios_saf" => &mut browsers.ios_saf,
            "opera" => &mut browsers.opera,
            "safari" => &mut browsers.safari,
            _ => &mut browsers.samsung,
        };
        *slot = version;
    }
    Targets::from(browsers)
}

/// Minifies a stylesheet; the error says which step failed.
pub fn minify(
    source: &str,
    file_name: &str,
    css_targets: &[(String, String)],
) -> Result<String, MinifyError> {
    let targets = targets(css_targets);
    let options = ParserOptions {
        filename: file_name.to_string(),
        ..ParserOptions::default()
    };
    let mut sheet =
        StyleSheet::parse(source, options).map_err(|e| MinifyError::Syntax(e.to_string()))?;
    sheet
        .minify(MinifyOptions {
            targets,
            ..MinifyOptions::default()
        })
        .map_err(|e| MinifyError::Minifier(e.to_string()))?;
    let printed = sheet
        .to_css(PrinterOptions {
            minify: true,
            targets,
            ..PrinterOptions::default()
        })
        .map_err(|e| MinifyError::Printer(e.to_string()))?;
    let code = restore_header(source, printed.code);
    // The guard's re-parse, strict (no error recovery).
    StyleSheet::parse(&code, ParserOptions::default())
        .map_err(|e| MinifyError::OutputUnparsable(e.to_string()))?;
    Ok(code)
}

/// lightningcss drops `@charset` and any `/*! license */` comment that follows it. Put
/// back the license comments of the file's header (before its first rule) that are
/// missing, and `@charset "UTF-8";` when the input declared one and the output is not
/// plain ASCII (so servers that send no charset still decode it right).
fn restore_header(source: &str, code: String) -> String {
    let header = &source[..source.find('{').unwrap_or(source.len())];
    let mut licenses = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*!") {
        let Some(len) = rest[start..].find("*/") else {
            break;
        };
        let comment = &rest[start..start + len + 2];
        if !code.contains(comment) {
            licenses.push_str(comment);
            licenses.push('\n');
        }
        rest = &rest[start + len + 2..];
    }
    let charset = source
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with("@charset")
        && !code.is_ascii();
    if licenses.is_empty() && !charset {
        return code;
    }
    let mut out = String::with_capacity(code.len() + licenses.len() + 20);
    if charset {
        out.push_str("@charset \"UTF-8\";");
    }
    out.push_str(&licenses);
    out.push_str(&code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minifies_and_keeps_nesting_without_targets() {
        let out = minify(
            ".a {\n  color: #ff0000;\n  &:hover { color: blue; }\n}\n",
            "a.css",
            &[],
        )
        .unwrap();
        assert_eq!(out, ".a{color:red;&:hover{color:#00f}}");
    }

    #[test]
    fn targets_lower_nesting() {
        let targets = parse_targets(&BTreeMap::from([("safari".into(), "15".into())])).unwrap();
        let out = minify(".a { &:hover { color: blue; } }", "a.css", &targets).unwrap();
        assert_eq!(out, ".a:hover{color:#00f}");
    }

    #[test]
    fn license_comments_survive() {
        let out = minify("/*! theme v2 | MIT */\n.a { color: red; }", "a.css", &[]).unwrap();
        assert!(out.starts_with("/*! theme v2 | MIT */"), "{out}");
    }

    #[test]
    fn charset_and_a_license_after_it_are_restored() {
        let src = "@charset \"UTF-8\";\n/*! theme | MIT */\n.a::after { content: \"→\"; }\n";
        let out = minify(src, "a.css", &[]).unwrap();
        assert_eq!(
            out,
            "@charset \"UTF-8\";/*! theme | MIT */\n.a:after{content:\"→\"}"
        );
        let ascii = minify("@charset \"UTF-8\";\n.a { color: red }", "a.css", &[]).unwrap();
        assert_eq!(
            ascii, ".a{color:red}",
            "no @charset needed for ASCII output"
        );
    }

    #[test]
    fn broken_css_is_an_error_and_bad_targets_are_named() {
        let err = minify("a {{ color: red }", "a.css", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("syntax error"), "{err}");
        let err = minify(".a { color: red; } }", "a.css", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("syntax error"), "{err}");
        let err = parse_targets(&BTreeMap::from([("netscape".into(), "4".into())]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("netscape"), "{err}");
        let err = parse_targets(&BTreeMap::from([("chrome".into(), "new".into())]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("chrome"), "{err}");
    }
}
