//! JSON compaction: validate, then drop whitespace outside strings.
//!
//! Removing whitespace token by token (rather than re-serialising a parsed value) keeps
//! every number, escape, key order and duplicate key exactly as written, so compaction can
//! never change what a consumer reads.

use serde::de::IgnoredAny;

use super::MinifyError;

/// Compacts a JSON document; invalid JSON is [`MinifyError::Syntax`].
pub fn minify(source: &str) -> Result<String, MinifyError> {
    serde_json::from_str::<IgnoredAny>(source).map_err(|e| MinifyError::Syntax(e.to_string()))?;
    let mut out = String::with_capacity(source.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in source.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            out.push(ch);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_strings_numbers_and_duplicates_exactly() {
        let src = "{\n  \"a b\": \"x \\\" y\",\n  \"n\": 12345678901234567890,\n  \"d\": 1.10,\n  \"a b\": [ 1 , 2 ]\n}\n";
        assert_eq!(
            minify(src).unwrap(),
            "{\"a b\":\"x \\\" y\",\"n\":12345678901234567890,\"d\":1.10,\"a b\":[1,2]}"
        );
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(
            minify("{\"a\": }")
                .unwrap_err()
                .to_string()
                .starts_with("syntax error")
        );
    }

    proptest! {
        #[test]
        fn compaction_preserves_the_value(value in any::<std::collections::BTreeMap<String, (i64, String, bool)>>()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let compact = minify(&pretty).unwrap();
            let back: serde_json::Value = serde_json::from_str(&compact).unwrap();
            prop_assert_eq!(back, serde_json::to_value(&value).unwrap());
            prop_assert_eq!(compact, serde_json::to_string(&value).unwrap());
        }
    }
}
