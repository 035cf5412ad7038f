//! Bound parameters written into a router statement as typed literals.
//!
//! A prepared router statement (`SELECT ... WHERE aid = $1`, pgbench `-M prepared`, every
//! driver) can then take the pipelined simple-protocol path to its worker, as its simple
//! twin does. `'value'::type` runs the type's input function on the value's text, exactly
//! what the server does with a text-format parameter of that type, so the statement means
//! the same. Only text-format values of types named here are inlined; anything else keeps
//! the extended protocol.

use tessera_catalog::model::oid;

use crate::wire::BoundParam;

/// The SQL name of a parameter type whose text form can be inlined, by OID.
fn type_name(type_oid: u32) -> Option<&'static str> {
    Some(match type_oid {
        oid::BOOL => "pg_catalog.bool",
        oid::INT2 => "pg_catalog.int2",
        oid::INT4 => "pg_catalog.int4",
        oid::INT8 => "pg_catalog.int8",
        oid::TEXT => "pg_catalog.text",
        oid::VARCHAR => "pg_catalog.varchar",
        oid::BPCHAR => "pg_catalog.bpchar",
        oid::NUMERIC => "pg_catalog.numeric",
        oid::DATE => "pg_catalog.date",
        oid::TIMESTAMP => "pg_catalog.timestamp",
        oid::FLOAT4 => "pg_catalog.float4",
        oid::FLOAT8 => "pg_catalog.float8",
        oid::TIMESTAMPTZ => "pg_catalog.timestamptz",
        oid::UUID => "pg_catalog.uuid",
        _ => return None,
    })
}

/// `sql` with each `$n` replaced by parameter n as a typed literal (`'v'::pg_catalog.int4`,
/// `NULL::pg_catalog.text`); `None` when a parameter is binary, of a type not listed, or
/// `sql` names a parameter that was not bound. `$n` inside quotes, quoted identifiers,
/// dollar quotes and comments is left alone.
pub fn inline_params(sql: &str, types: &[u32], params: &[BoundParam]) -> Option<String> {
    let mut literals = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        if p.format != 0 {
            return None;
        }
        let name = type_name(*types.get(i)?)?;
        literals.push(match &p.value {
            None => format!("NULL::{name}"),
            Some(v) => {
                let text = std::str::from_utf8(v).ok()?;
                if text.contains('\0') {
                    return None;
                }
                format!("'{}'::{name}", text.replace('\'', "''"))
            }
        });
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16 * literals.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => {
                let escapes = i > 0 && matches!(bytes[i - 1], b'E' | b'e');
                i += 1;
                while i < bytes.len() {
                    if escapes && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => return None,
            b'$' => {
                let prev_ident =
                    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j > i + 1 && !prev_ident {
                    let n: usize = sql[i + 1..j].parse().ok()?;
                    let literal = literals.get(n.checked_sub(1)?)?;
                    out.push_str(&sql[copied..i]);
                    out.push_str(literal);
                    copied = j;
                    i = j;
                } else if !prev_ident {
                    // A dollar quote ($$ or $tag$): not worth reading here.
                    return None;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn text(v: &str) -> BoundParam {
        BoundParam {
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            format: 0,
        }
    }

    #[test]
    fn parameters_become_typed_literals() {
        let sql = "SELECT abalance FROM t WHERE aid = $1 AND note <> '$1' AND \"$2\" = $2";
        assert_eq!(
            inline_params(sql, &[23, 25], &[text("42"), text("it's")]).as_deref(),
            Some(
                "SELECT abalance FROM t WHERE aid = '42'::pg_catalog.int4 AND note <> '$1' \
                 AND \"$2\" = 'it''s'::pg_catalog.text"
            )
        );
        let null = BoundParam {
            value: None,
            format: 0,
        };
        assert_eq!(
            inline_params("SELECT $1", &[20], &[null]).as_deref(),
            Some("SELECT NULL::pg_catalog.int8")
        );
    }

    #[test]
    fn what_cannot_be_inlined_is_not() {
        let binary = BoundParam {
            value: Some(Bytes::from_static(&[0, 0, 0, 1])),
            format: 1,
        };
        assert!(inline_params("SELECT $1", &[23], &[binary]).is_none());
        assert!(inline_params("SELECT $1", &[600], &[text("(1,2)")]).is_none());
        assert!(inline_params("SELECT $2", &[23], &[text("1")]).is_none());
        assert!(inline_params("SELECT $$x$$, $1", &[23], &[text("1")]).is_none());
    }
}
