//! Minification behind a guard.
//!
//! A minifier never fails a deploy and never ships broken code: when the input does not
//! parse, the minifier panics, its output does not parse again, or the output is not
//! smaller, the original bytes ship unchanged and the outcome says why (shown to the
//! user as a warning naming the file).

pub mod css;
pub mod js;
pub mod json;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use serde::{Deserialize, Serialize};

use super::classify::AssetKind;

/// What minification did to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MinifyOutcome {
    /// The kind has no minifier (images, text, HTML, …).
    NotApplicable,
    /// Minification was not attempted, e.g. turned off by a rule or a `*.min.*` name.
    Skipped {
        /// Why it was skipped.
        reason: String,
    },
    /// The minified bytes ship.
    Minified {
        /// Size before.
        before: u64,
        /// Size after.
        after: u64,
    },
    /// The minifier was tried and the original ships unchanged (a warning).
    Fallback {
        /// Why the minified output was not used.
        reason: String,
    },
}

impl MinifyOutcome {
    /// The warning to show for this outcome, if any.
    pub fn warning(&self) -> Option<String> {
        match self {
            Self::Fallback { reason } => Some(format!("not minified, shipped unchanged: {reason}")),
            _ => None,
        }
    }
}

/// Settings that change minifier output (part of the processing-cache key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MinifySettings {
    /// Minify JavaScript.
    pub js: bool,
    /// Minify CSS.
    pub css: bool,
    /// Minify JSON.
    pub json: bool,
    /// lightningcss browser targets, already validated.
    pub css_targets: Vec<(String, String)>,
}

/// Why a minifier's output is not shipped (the guard ships the original instead, with
/// this as the file's warning).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MinifyError {
    /// The input does not parse.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The input parsed but the minifier failed on it.
    #[error("minifier error: {0}")]
    Minifier(String),
    /// The minified tree could not be printed.
    #[error("printer error: {0}")]
    Printer(String),
    /// The guard's re-parse of the output failed.
    #[error("minified output does not parse: {0}")]
    OutputUnparsable(String),
    /// The output parses but has errors the input did not (redeclarations, …).
    #[error("minified output is invalid: {0}")]
    OutputInvalid(String),
    /// The minifier panicked (caught; the file ships unchanged).
    #[error("minifier panicked: {0}")]
    Panicked(String),
}

/// Minifies `source` according to `kind`, behind the guard. Returns the bytes to ship
/// (`None` means ship the original) and the outcome. `forced` (a rule saying
/// `minify = true`) minifies even `*.min.*` files and kinds turned off globally.
pub fn minify(
    kind: AssetKind,
    file_name: &str,
    source: &[u8],
    settings: &MinifySettings,
    forced: bool,
) -> (Option<Vec<u8>>, MinifyOutcome) {
    let enabled = forced
        || match kind {
            AssetKind::Js => settings.js,
            AssetKind::Css => settings.css,
            AssetKind::Json => settings.json,
            _ => false,
        };
    if !matches!(kind, AssetKind::Js | AssetKind::Css | AssetKind::Json) {
        return (None, MinifyOutcome::NotApplicable);
    }
    if !enabled {
        return (
            None,
            MinifyOutcome::Skipped {
                reason: "minification turned off".into(),
            },
        );
    }
    if !forced && is_already_minified(file_name) {
        return (
            None,
            MinifyOutcome::Skipped {
                reason: "already minified (*.min.*)".into(),
            },
        );
    }
    if source.is_empty() {
        return (
            None,
            MinifyOutcome::Skipped {
                reason: "empty file".into(),
            },
        );
    }
    let text = match std::str::from_utf8(source.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(source)) {
        Ok(text) => text,
        Err(err) => return fallback(format!("not valid UTF-8 ({err})")),
    };
    let result = catch_panic(|| match kind {
        AssetKind::Js => js::minify(text, js::JsMode::from_file_name(file_name)),
        AssetKind::Css => css::minify(text, file_name, &settings.css_targets),
        _ => json::minify(text),
    });
    match result {
        Err(reason) => fallback(reason.to_string()),
        Ok(out) if out.len() >= source.len() => fallback(format!(
            "no size win ({} bytes minified vs {} original)",
            out.len(),
            source.len()
        )),
        Ok(out) => {
            let outcome = MinifyOutcome::Minified {
                before: source.len() as u64,
                after: out.len() as u64,
            };
            (Some(out.into_bytes()), outcome)
        }
    }
}

fn fallback(reason: String) -> (Option<Vec<u8>>, MinifyOutcome) {
    (None, MinifyOutcome::Fallback { reason })
}

/// What in a file's name changes how it is minified (its parse mode and `*.min.*`), for
/// cache keys: files with the same bytes but different such traits are cached apart.
pub fn name_traits(file_name: &str) -> String {
    format!(
        "{:?}/{}",
        js::JsMode::from_file_name(file_name),
        is_already_minified(file_name)
    )
}

/// `app.min.js`, `x.min.css`: minified already; re-minifying gains little and risks a lot.
fn is_already_minified(file_name: &str) -> bool {
    let base = file_name
        .rsplit('/')
        .next()
        .unwrap_or(file_name)
        .to_ascii_lowercase();
    base.contains(".min.")
}

thread_local! {
    /// Set while a minifier runs under [`catch_panic`], so the panic hook stays quiet:
    /// the panic is reported once, as the file's warning, not as a scary backtrace.
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f`, turning a panic into [`MinifyError::Panicked`].
fn catch_panic<T>(f: impl FnOnce() -> Result<T, MinifyError>) -> Result<T, MinifyError> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_GUARD.with(Cell::get) {
                previous(info);
            }
        }));
    });
    IN_GUARD.with(|g| g.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(false));
    match result {
        Ok(result) => result,
        Err(payload) => Err(MinifyError::Panicked(panic_message(payload.as_ref()))),
    }
}

/// The message of a caught panic (`panic!` payloads are `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MinifySettings {
        MinifySettings {
            js: true,
            css: true,
            json: true,
            css_targets: Vec::new(),
        }
    }

    #[test]
    fn broken_js_ships_unchanged_with_a_reason() {
        let (out, outcome) = minify(
            AssetKind::Js,
            "broken.js",
            b"function f( {",
            &settings(),
            false,
        );
        assert!(out.is_none());
        let MinifyOutcome::Fallback { reason } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(reason.contains("syntax error"), "{reason}");
    }

    #[test]
    fn min_files_and_disabled_kinds_are_skipped() {
        let (out, outcome) = minify(
            AssetKind::Js,
            "a/vendor.min.js",
            b"var a = 1;",
            &settings(),
            false,
        );
        assert!(out.is_none());
        assert!(matches!(outcome, MinifyOutcome::Skipped { .. }));
        let off = MinifySettings {
            css: false,
            ..settings()
        };
        let (_, outcome) = minify(AssetKind::Css, "a.css", b"a { color: red }", &off, false);
        assert!(matches!(outcome, MinifyOutcome::Skipped { .. }));
        let (out, _) = minify(AssetKind::Css, "a.css", b"a { color: red }", &off, true);
        assert_eq!(
            out.as_deref(),
            Some(&b"a{color:red}"[..]),
            "a rule can force minification"
        );
        let (_, outcome) = minify(AssetKind::Html, "a.html", b"<p>", &settings(), false);
        assert_eq!(outcome, MinifyOutcome::NotApplicable);
    }

    #[test]
    fn invalid_utf8_falls_back() {
        let (out, outcome) = minify(
            AssetKind::Css,
            "a.css",
            b"a { content: \"\xff\" }",
            &settings(),
            false,
        );
        assert!(out.is_none());
        assert!(matches!(outcome, MinifyOutcome::Fallback { reason } if reason.contains("UTF-8")));
    }

    #[test]
    fn no_size_win_falls_back() {
        let (out, outcome) = minify(AssetKind::Json, "a.json", b"[1]", &settings(), false);
        assert!(out.is_none());
        assert!(
            matches!(outcome, MinifyOutcome::Fallback { reason } if reason.contains("no size win"))
        );
    }

    #[test]
    fn panics_become_errors() {
        let result: Result<(), MinifyError> = catch_panic(|| panic!("boom"));
        assert_eq!(result.unwrap_err().to_string(), "minifier panicked: boom");
    }
}
