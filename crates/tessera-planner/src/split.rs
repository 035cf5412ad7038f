//! Splitting a simple-protocol Query string into statements, keeping each statement's original
//! text (so that statements Tessera does not touch are forwarded byte for byte).
//!
//! Respects single quotes (with `''` and E'' backslash escapes), double-quoted identifiers,
//! dollar quoting (`$$ ... $$`, `$tag$ ... $tag$`), `--` and nested `/* */` comments, the
//! same lexical rules as PostgreSQL's scanner (src/backend/parser/scan.l) for these tokens.

/// Splits `sql` at top-level semicolons: not inside parentheses (a rule's `DO INSTEAD (a;
/// b)`) nor inside a `BEGIN ATOMIC ... END` function body, as psql's lexer does. Empty
/// statements (only whitespace, comments and semicolons) are dropped. Returned slices keep
/// their terminating semicolon, so that what PostgreSQL sees — and the positions in its
/// errors — are what the client sent.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut has_content = false;
    let mut parens: i32 = 0;
    // Inside BEGIN ATOMIC: 1 + the CASE expressions open (each closed by END).
    let mut atomic: i32 = 0;
    let mut previous_word = String::new();
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let begin = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
                {
                    i += 1;
                }
                let word = sql[begin..i].to_ascii_lowercase();
                if atomic == 0 && word == "atomic" && previous_word == "begin" {
                    atomic = 1;
                } else if atomic > 0 && word == "case" {
                    atomic += 1;
                } else if atomic > 0 && word == "end" {
                    atomic -= 1;
                }
                previous_word = word;
                has_content = true;
                continue;
            }
            b'(' => {
                parens += 1;
                has_content = true;
            }
            b')' => {
                parens -= 1;
                has_content = true;
            }
            b'\'' => {
                let escapes = i > 0 && matches!(bytes[i - 1], b'E' | b'e');
                i += 1;
                while i < bytes.len() {
                    if escapes && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == b'\'' {
                        if i + 1 < bytes.len() && bytes[i + 1] == b'\'' {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                has_content = true;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += 1;
                }
                has_content = true;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                        continue;
                    }
                    if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                        continue;
                    }
                    i += 1;
                }
                continue;
            }
            b'$' => {
                // A dollar quote starts with $tag$ where tag is empty or an identifier not
                // starting with a digit (a $1 parameter is not a quote).
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                let tag_ok = j < bytes.len()
                    && bytes[j] == b'$'
                    && !bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit());
                let prev_ident =
                    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                if tag_ok && !prev_ident {
                    let tag = &sql[i..=j];
                    if let Some(end) = sql[j + 1..].find(tag) {
                        i = j + 1 + end + tag.len();
                    } else {
                        i = bytes.len();
                    }
                    has_content = true;
                    continue;
                }
                has_content = true;
            }
            b';' if parens > 0 || atomic > 0 => {}
            b';' => {
                if has_content {
                    out.push(sql[start..=i].trim());
                }
                start = i + 1;
                has_content = false;
                parens = 0;
                previous_word.clear();
            }
            c if c.is_ascii_whitespace() => {}
            _ => has_content = true,
        }
        i += 1;
    }
    if has_content && start < sql.len() {
        out.push(sql[start..].trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_and_keeps_quotes() {
        let s = "select 'a;b'; select \"x;\" from t; -- c;\n select $$;$$, $1; ;";
        assert_eq!(
            split_statements(s),
            vec![
                "select 'a;b';",
                "select \"x;\" from t;",
                "-- c;\n select $$;$$, $1;"
            ]
        );
    }

    #[test]
    fn keeps_rule_actions_and_atomic_bodies_whole() {
        let rule = "CREATE RULE r AS ON INSERT TO t DO INSTEAD (DELETE FROM t; DELETE FROM t);";
        assert_eq!(
            split_statements(&format!("{rule} SELECT 1")),
            vec![rule, "SELECT 1"]
        );
        let body = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC \
                    SELECT CASE WHEN true THEN 1 ELSE 2 END; SELECT 2; END;";
        assert_eq!(
            split_statements(&format!("{body}\nSELECT 3;")),
            vec![body, "SELECT 3;"]
        );
    }

    #[test]
    fn comments_only_is_empty() {
        assert!(split_statements(" ; -- nothing\n /* x; */ ;").is_empty());
    }
}
