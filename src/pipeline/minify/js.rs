//! JavaScript minification with `oxc_minifier` (compress + mangle).
//!
//! Why oxc and not minify-js: ../shared/research/minifiers.md and docs/minifiers.md.
//! `.js` files are minified as classic scripts unless they contain `import`/`export`
//! syntax, so top-level names (globals such as `jQuery`) are never renamed; `.mjs` is
//! always a module, `.cjs` CommonJS. License comments (`/*!`, `@license`, `@preserve`)
//! and a trailing `sourceMappingURL` comment are kept.

use oxc_allocator::Allocator;
use oxc_codegen::{Codegen, CodegenOptions, CommentOptions, LegalComment};
use oxc_minifier::{CompressOptions, MangleOptions, Minifier, MinifierOptions};
use oxc_parser::Parser;
use oxc_span::SourceType;

use super::MinifyError;

/// How a JavaScript file is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsMode {
    /// Decide from the syntax: a module if it has `import`/`export`, else a classic script.
    Detect,
    /// An ES module (`.mjs`).
    Module,
    /// CommonJS (`.cjs`).
    CommonJs,
}

impl JsMode {
    /// The mode a file name implies.
    pub fn from_file_name(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".mjs") {
            Self::Module
        } else if lower.ends_with(".cjs") {
            Self::CommonJs
        } else {
            Self::Detect
        }
    }

    fn source_type(self) -> SourceType {
        match self {
            Self::Detect => SourceType::unambiguous(),
            Self::Module => SourceType::mjs(),
            Self::CommonJs => SourceType::cjs(),
        }
    }
}

/// Minifies JavaScript source. Errors say why (syntax errors in the input, or output
/// that fails to parse again).
pub fn minify(source: &str, mode: JsMode) -> Result<String, MinifyError> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, mode.source_type()).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(MinifyError::Syntax(first_error(
            &parsed.diagnostics,
            source,
        )));
    }
    let semantic_errors = semantic_errors(&parsed.program, source);
    if let Some(error) = semantic_errors {
        return Err(MinifyError::Syntax(error));
    }
    let mut program = parsed.program;
    // For `Detect` the parser has resolved the kind: module or classic script.
    let resolved = program.source_type;
    let options = MinifierOptions {
        mangle: Some(MangleOptions::default()),
        compress: Some(CompressOptions::default()),
        mangle_properties: None,
    };
    let minified = Minifier::new(options).minify(&allocator, &mut program);
    let codegen_options = CodegenOptions {
        comments: CommentOptions {
            legal: LegalComment::Inline,
            ..CommentOptions::disabled()
        },
        ..CodegenOptions::minify()
    };
    let mut code = Codegen::new()
        .with_options(codegen_options)
        .with_scoping(minified.scoping)
        .build(&program)
        .code;
    if let Some(comment) = source_mapping_comment(source) {
        if !code.ends_with('\n') {
            code.push('\n');
        }
        code.push_str(comment);
    }
    verify(&code, resolved)?;
    Ok(code)
}

/// The guard's re-parse: the output must parse, in the same mode, without errors.
fn verify(code: &str, source_type: SourceType) -> Result<(), MinifyError> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, code, source_type).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(MinifyError::OutputUnparsable(first_error(
            &parsed.diagnostics,
            code,
        )));
    }
    if let Some(error) = semantic_errors(&parsed.program, code) {
        return Err(MinifyError::OutputInvalid(error));
    }
    Ok(())
}

/// Early errors the parser leaves to semantic analysis (redeclarations, bad `break`, …).
fn semantic_errors(program: &oxc_ast::ast::Program<'_>, source: &str) -> Option<String> {
    let semantic = oxc_semantic::SemanticBuilder::new()
        .with_check_syntax_error(true)
        .build(program);
    semantic
        .diagnostics
        .has_errors()
        .then(|| first_error(&semantic.diagnostics, source))
}

/// The first error with its position (`Expected function name at 2:10`).
fn first_error(diagnostics: &oxc_diagnostics::Diagnostics, source: &str) -> String {
    let Some(error) = diagnostics.errors().next() else {
        return "unknown error".into();
    };
    match error.labels.first().map(|label| label.offset() as usize) {
        Some(offset) => {
            let before = &source.as_bytes()[..offset.min(source.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            format!("{error} at {line}:{column}")
        }
        None => error.to_string(),
    }
}

/// The trailing `//# sourceMappingURL=…` (or legacy `//@`) comment, if the file ends with one.
fn source_mapping_comment(source: &str) -> Option<&str> {
    let last = source.trim_end().rsplit('\n').next()?.trim();
    let is_map_comment = ["//# sourceMappingURL=", "//@ sourceMappingURL="]
        .iter()
        .any(|prefix| last.starts_with(prefix));
    is_map_comment.then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_scripts_keep_top_level_names() {
        let out = minify(
            "var jQueryLike = function (selector) { return [selector]; };",
            JsMode::Detect,
        )
        .unwrap();
        assert!(out.contains("jQueryLike"), "{out}");
    }

    #[test]
    fn modules_are_detected_and_exports_survive() {
        let src = "const internalName = 40; export function answer() { return internalName + 2; }";
        let out = minify(src, JsMode::Detect).unwrap();
        assert!(out.contains("export") && out.contains("answer"), "{out}");
        assert!(
            !out.contains("internalName"),
            "module top level is mangled or inlined: {out}"
        );
    }

    #[test]
    fn license_and_source_map_comments_survive() {
        let src = "/*! mylib v1 | MIT */\nfunction add(a, b) {\n  return a + b;\n}\nwindow.add = add;\n//# sourceMappingURL=add.js.map\n";
        let out = minify(src, JsMode::Detect).unwrap();
        assert!(out.contains("/*! mylib v1 | MIT */"), "{out}");
        assert!(out.ends_with("//# sourceMappingURL=add.js.map"), "{out}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let err = minify("var ok = 1;\nfunction (", JsMode::Detect).unwrap_err();
        assert_eq!(
            err.to_string(),
            "syntax error: Expected function name at 2:10"
        );
        let err = minify(
            "await x; import a from 'b'; let a = 1; let a = 2;",
            JsMode::Module,
        );
        assert!(err.is_err(), "redeclaration is caught");
    }
}
