//! PostgreSQL values ↔ Arrow arrays, for the rows the coordinator has to look inside (partial
//! aggregates, sort keys), and PostgreSQL's exact output rules for the values it computes.
//!
//! Everything that passes through untouched never comes here. What does come here is written
//! the way PostgreSQL 15 writes it: numeric with its display scale (`numeric_out`), float8 with
//! the shortest round-trip digits and PostgreSQL's switch to exponent notation
//! (`float8out` via `double_to_shortest_decimal`), dates as ISO `YYYY-MM-DD`, and `avg` of
//! numeric with the result scale of `select_div_scale` (src/backend/utils/adt/numeric.c).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType;
use tessera_catalog::model::oid;

use crate::ExecError;

/// Days between 1970-01-01 (Arrow's epoch) and 2000-01-01 (PostgreSQL's).
pub const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds between the two epochs.
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn unsupported_type(type_oid: u32) -> ExecError {
    ExecError::Unsupported(format!(
        "values of type OID {type_oid} cannot be merged across shards yet (supported: integers, numeric, \
         float, text, varchar, char, bool, date, timestamp)"
    ))
}

fn bad_value(type_oid: u32) -> ExecError {
    ExecError::Internal(format!(
        "malformed value of type OID {type_oid} from a worker"
    ))
}

/// A numeric value as an integer mantissa and a decimal scale: value = mantissa / 10^scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    /// The digits as an integer.
    pub mantissa: i128,
    /// Digits after the decimal point (PostgreSQL's dscale).
    pub scale: u32,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    /// Rescales to `scale` (≥ self.scale). `None` on overflow.
    pub fn rescale(self, scale: u32) -> Option<i128> {
        self.mantissa
            .checked_mul(pow10(scale.checked_sub(self.scale)?)?)
    }
}

/// Parses PostgreSQL's binary numeric (`numeric_send`): ndigits, weight, sign, dscale, then
/// base-10000 digits.
pub fn numeric_from_binary(b: &[u8]) -> Result<Decimal, ExecError> {
    if b.len() < 8 {
        return Err(bad_value(oid::NUMERIC));
    }
    let rd = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
    let ndigits = rd(0) as usize;
    let weight = rd(2) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]) as u32;
    if sign == 0xC000 || sign == 0xD000 || sign == 0xF000 {
        return Err(ExecError::Unsupported(
            "NaN and infinite numeric values cannot be merged across shards yet".into(),
        ));
    }
    if b.len() < 8 + 2 * ndigits {
        return Err(bad_value(oid::NUMERIC));
    }
    let overflow = || {
        ExecError::Unsupported(
            "numeric value too large to merge across shards (more than 38 digits)".into(),
        )
    };
    let mut v: i128 = 0;
    for i in 0..ndigits {
        v = v
            .checked_mul(10_000)
            .and_then(|x| x.checked_add(rd(8 + 2 * i) as i128))
            .ok_or_else(overflow)?;
    }
    // v * 10000^(weight - ndigits + 1), expressed at scale dscale.
    let exp10 = 4 * (weight - ndigits as i32 + 1) + dscale as i32;
    let mantissa = if exp10 >= 0 {
        v.checked_mul(pow10(exp10 as u32).ok_or_else(overflow)?)
            .ok_or_else(overflow)?
    } else {
        let d = pow10((-exp10) as u32).ok_or_else(overflow)?;
        v / d
    };
    Ok(Decimal {
        mantissa: if sign == 0x4000 { -mantissa } else { mantissa },
        scale: dscale,
    })
}

/// Parses numeric text (`-123.4500`).
pub fn numeric_from_text(s: &str) -> Result<Decimal, ExecError> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut v: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        let d = c.to_digit(10).ok_or_else(|| {
            ExecError::Unsupported(format!("numeric value {s} cannot be merged across shards"))
        })?;
        v = v
            .checked_mul(10)
            .and_then(|x| x.checked_add(d as i128))
            .ok_or_else(|| {
                ExecError::Unsupported("numeric value too large to merge across shards".into())
            })?;
    }
    Ok(Decimal {
        mantissa: if neg { -v } else { v },
        scale: frac.len() as u32,
    })
}

/// PostgreSQL's text form of a decimal: all `scale` fraction digits, as `numeric_out` does.
pub fn numeric_to_text(d: Decimal) -> String {
    let neg = d.mantissa < 0;
    let digits = d.mantissa.unsigned_abs().to_string();
    let scale = d.scale as usize;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
        return out;
    }
    let padded = if digits.len() <= scale {
        format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    out.push_str(int);
    out.push('.');
    out.push_str(frac);
    out
}

/// PostgreSQL's binary form of a decimal (`numeric_send`).
pub fn numeric_to_binary(d: Decimal) -> Vec<u8> {
    let neg = d.mantissa < 0;
    let abs = d.mantissa.unsigned_abs();
    // Split into integer and fraction at the decimal point, then into base-10000 groups
    // aligned on the point.
    let scale = d.scale;
    let ten_s = 10u128.pow(scale);
    let int_part = abs / ten_s;
    let frac_part = abs % ten_s;
    let mut int_groups: Vec<i16> = Vec::new();
    let mut x = int_part;
    while x > 0 {
        int_groups.push((x % 10_000) as i16);
        x /= 10_000;
    }
    int_groups.reverse();
    let frac_groups_n = scale.div_ceil(4);
    let frac_padded = frac_part * 10u128.pow(frac_groups_n * 4 - scale);
    let mut frac_groups: Vec<i16> = Vec::new();
    let mut f = frac_padded;
    for _ in 0..frac_groups_n {
        frac_groups.push((f % 10_000) as i16);
        f /= 10_000;
    }
    frac_groups.reverse();
    let mut digits: Vec<i16> = int_groups.clone();
    digits.extend(&frac_groups);
    let mut weight = int_groups.len() as i32 - 1;
    // Strip leading zeros (adjust weight) and trailing zeros.
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(
        &(if neg && !digits.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in digits {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

/// Weight (in base-10000 digits) and value of the first non-zero base-10000 digit of |d|.
fn nbase_weight_and_first_digit(d: Decimal) -> (i32, i128) {
    let abs = d.mantissa.unsigned_abs();
    if abs == 0 {
        return (0, 0);
    }
    let digits = abs.to_string();
    let scale = d.scale as usize;
    let (int, frac) = if digits.len() > scale {
        (
            digits[..digits.len() - scale].to_string(),
            digits[digits.len() - scale..].to_string(),
        )
    } else {
        (
            String::new(),
            format!("{}{}", "0".repeat(scale - digits.len()), digits),
        )
    };
    let int_pad = (4 - int.len() % 4) % 4;
    let int_full = format!("{}{}", "0".repeat(int_pad), int);
    let frac_pad = (4 - frac.len() % 4) % 4;
    let frac_full = format!("{}{}", frac, "0".repeat(frac_pad));
    let groups_int = int_full.len() / 4;
    let all = format!("{int_full}{frac_full}");
    for (i, chunk) in all.as_bytes().chunks(4).enumerate() {
        let v: i128 = std::str::from_utf8(chunk)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if v != 0 {
            return (groups_int as i32 - 1 - i as i32, v);
        }
    }
    (0, 0)
}

/// PostgreSQL's `numeric_div(sum, count)` as `avg(numeric)` finishes: the result scale of
/// `select_div_scale` (at least 16 significant digits, at least the inputs' scales) and rounding
/// half away from zero (`div_var` with round = true). Source: src/backend/utils/adt/numeric.c.
pub fn numeric_avg(sum: Decimal, count: i64) -> Result<Decimal, ExecError> {
    const NUMERIC_MIN_SIG_DIGITS: i32 = 16;
    let count_dec = Decimal {
        mantissa: count as i128,
        scale: 0,
    };
    let (w1, f1) = nbase_weight_and_first_digit(sum);
    let (w2, f2) = nbase_weight_and_first_digit(count_dec);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (NUMERIC_MIN_SIG_DIGITS - qweight * 4)
        .max(sum.scale as i32)
        .clamp(0, 1000) as u32;
    let overflow =
        || ExecError::Unsupported("avg too large to compute exactly across shards".into());
    // result = round(sum.mantissa * 10^(rscale - sum.scale) / count)
    let num = if rscale >= sum.scale {
        sum.mantissa
            .checked_mul(pow10(rscale - sum.scale).ok_or_else(overflow)?)
            .ok_or_else(overflow)?
    } else {
        return Err(overflow());
    };
    let den = count as i128;
    if den == 0 {
        return Err(ExecError::Internal("avg with zero count".into()));
    }
    let q = num / den;
    let r = num % den;
    let q = if 2 * r.abs() >= den.abs() {
        if (num < 0) != (den < 0) {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    };
    Ok(Decimal {
        mantissa: q,
        scale: rscale,
    })
}

/// PostgreSQL's `float8out`/`float4out` text: shortest round-trip digits; exponent notation
/// when the decimal exponent is < -4 or ≥ `precision` (15 for float8, 6 for float4), with a
/// sign and at least two exponent digits.
pub fn float_to_text(v: f64, shortest_sci: String, precision: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (mantissa, exp) = shortest_sci.split_once('e').unwrap_or((&shortest_sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= precision {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// float8 text as PostgreSQL writes it.
pub fn float8_to_text(v: f64) -> String {
    float_to_text(v, format!("{v:e}"), 15)
}

/// float4 text as PostgreSQL writes it.
pub fn float4_to_text(v: f32) -> String {
    float_to_text(v as f64, format!("{v:e}"), 6)
}

/// `(year, month, day)` of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// ISO date text of a day count since 1970-01-01 (`YYYY-MM-DD`, ` BC` for years ≤ 0).
pub fn date_to_text(days_since_1970: i32) -> String {
    let (y, m, d) = civil_from_days(days_since_1970 as i64);
    if y <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - y, m, d)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// ISO timestamp text of microseconds since 1970-01-01 (`YYYY-MM-DD HH:MM:SS[.ffffff]`).
pub fn timestamp_to_text(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rem = micros.rem_euclid(86_400_000_000);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let mut s = format!(
        "{} {:02}:{:02}:{:02}",
        date_to_text(days as i32),
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

fn parse_timestamp_text(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(' ')?;
    let days = tessera_catalog::model::parse_date(date)? as i64 + PG_EPOCH_DAYS as i64;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = parts.next()?.parse().ok()?;
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{:0<6}", &frac[..frac.len().min(6)]).parse().ok()?
    };
    Some(days * 86_400_000_000 + ((h * 60 + m) * 60 + sec) * 1_000_000 + micros)
}

/// The Arrow type used for a PostgreSQL type when merging.
pub fn arrow_type(type_oid: u32, numeric_scale: u32) -> Result<DataType, ExecError> {
    Ok(match type_oid {
        oid::INT2 => DataType::Int16,
        oid::INT4 => DataType::Int32,
        oid::INT8 | oid::OID => DataType::Int64,
        oid::FLOAT4 => DataType::Float32,
        oid::FLOAT8 => DataType::Float64,
        oid::NUMERIC => DataType::Decimal128(38, numeric_scale.min(38) as i8),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | 705 => DataType::Utf8,
        oid::BOOL => DataType::Boolean,
        oid::DATE => DataType::Date32,
        oid::TIMESTAMP => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        other => return Err(unsupported_type(other)),
    })
}

fn text(b: &[u8], type_oid: u32) -> Result<&str, ExecError> {
    std::str::from_utf8(b).map_err(|_| bad_value(type_oid))
}

fn be<const N: usize>(b: &[u8], type_oid: u32) -> Result<[u8; N], ExecError> {
    b.try_into().map_err(|_| bad_value(type_oid))
}

/// Builds an Arrow array from one column of PostgreSQL values in wire `format` (0 text,
/// 1 binary). Numeric values are brought to the largest scale present.
pub fn decode_column(
    type_oid: u32,
    format: i16,
    values: &[Option<&[u8]>],
) -> Result<ArrayRef, ExecError> {
    let binary = format == 1;
    macro_rules! build {
        ($builder:expr, $parse:expr) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    None => b.append_null(),
                    Some(bytes) => b.append_value($parse(*bytes)?),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let parse_err = |_| bad_value(type_oid);
    Ok(match type_oid {
        oid::INT2 => build!(Int16Builder::new(), |b: &[u8]| -> Result<i16, ExecError> {
            if binary {
                Ok(i16::from_be_bytes(be(b, type_oid)?))
            } else {
                text(b, type_oid)?.parse().map_err(parse_err)
            }
        }),
        oid::INT4 => build!(Int32Builder::new(), |b: &[u8]| -> Result<i32, ExecError> {
            if binary {
                Ok(i32::from_be_bytes(be(b, type_oid)?))
            } else {
                text(b, type_oid)?.parse().map_err(parse_err)
            }
        }),
        oid::INT8 | oid::OID => build!(Int64Builder::new(), |b: &[u8]| -> Result<i64, ExecError> {
            if binary {
                if b.len() == 4 {
                    Ok(u32::from_be_bytes(be(b, type_oid)?) as i64)
                } else {
                    Ok(i64::from_be_bytes(be(b, type_oid)?))
                }
            } else {
                text(b, type_oid)?.parse().map_err(parse_err)
            }
        }),
        oid::FLOAT4 => build!(
            Float32Builder::new(),
            |b: &[u8]| -> Result<f32, ExecError> {
                if binary {
                    Ok(f32::from_be_bytes(be(b, type_oid)?))
                } else {
                    parse_float(text(b, type_oid)?)
                        .map(|f| f as f32)
                        .ok_or_else(|| bad_value(type_oid))
                }
            }
        ),
        oid::FLOAT8 => build!(
            Float64Builder::new(),
            |b: &[u8]| -> Result<f64, ExecError> {
                if binary {
                    Ok(f64::from_be_bytes(be(b, type_oid)?))
                } else {
                    parse_float(text(b, type_oid)?).ok_or_else(|| bad_value(type_oid))
                }
            }
        ),
        oid::NUMERIC => {
            let mut decoded = Vec::with_capacity(values.len());
            let mut scale = 0;
            for v in values {
                let d = match v {
                    None => None,
                    Some(b) => Some(if binary {
                        numeric_from_binary(b)?
                    } else {
                        numeric_from_text(text(b, type_oid)?)?
                    }),
                };
                if let Some(d) = d {
                    scale = scale.max(d.scale);
                }
                decoded.push(d);
            }
            let mut b = Decimal128Builder::new();
            for d in decoded {
                match d {
                    None => b.append_null(),
                    Some(d) => b.append_value(d.rescale(scale).ok_or_else(|| {
                        ExecError::Unsupported(
                            "numeric value too large to merge across shards".into(),
                        )
                    })?),
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(38, scale.min(38) as i8)
                    .map_err(|e| ExecError::Internal(e.to_string()))?,
            )
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | 705 => {
            build!(
                StringBuilder::new(),
                |b: &[u8]| -> Result<String, ExecError> { Ok(text(b, type_oid)?.to_string()) }
            )
        }
        oid::BOOL => build!(
            BooleanBuilder::new(),
            |b: &[u8]| -> Result<bool, ExecError> {
                Ok(if binary {
                    b.first() == Some(&1)
                } else {
                    b == b"t"
                })
            }
        ),
        oid::DATE => build!(Date32Builder::new(), |b: &[u8]| -> Result<i32, ExecError> {
            if binary {
                Ok(i32::from_be_bytes(be(b, type_oid)?) + PG_EPOCH_DAYS)
            } else {
                tessera_catalog::model::parse_date(text(b, type_oid)?)
                    .map(|d| d + PG_EPOCH_DAYS)
                    .ok_or_else(|| bad_value(type_oid))
            }
        }),
        oid::TIMESTAMP => build!(TimestampMicrosecondBuilder::new(), |b: &[u8]| -> Result<
            i64,
            ExecError,
        > {
            if binary {
                Ok(i64::from_be_bytes(be(b, type_oid)?) + PG_EPOCH_MICROS)
            } else {
                parse_timestamp_text(text(b, type_oid)?).ok_or_else(|| bad_value(type_oid))
            }
        }),
        other => return Err(unsupported_type(other)),
    })
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// A computed value on its way to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum OutValue {
    /// SQL NULL.
    Null,
    /// Integer.
    Int(i64),
    /// Exact decimal.
    Decimal(Decimal),
    /// Float.
    Float(f64),
    /// Text.
    Text(String),
    /// Boolean.
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01.
    Timestamp(i64),
}

/// Reads row `i` of an Arrow array as an [`OutValue`].
pub fn out_value(array: &dyn Array, i: usize) -> Result<OutValue, ExecError> {
    use arrow::array::*;
    if array.is_null(i) {
        return Ok(OutValue::Null);
    }
    let any = array.as_any();
    Ok(match array.data_type() {
        DataType::Int16 => OutValue::Int(
            any.downcast_ref::<Int16Array>()
                .map(|a| a.value(i))
                .unwrap_or_default() as i64,
        ),
        DataType::Int32 => OutValue::Int(
            any.downcast_ref::<Int32Array>()
                .map(|a| a.value(i))
                .unwrap_or_default() as i64,
        ),
        DataType::Int64 => OutValue::Int(
            any.downcast_ref::<Int64Array>()
                .map(|a| a.value(i))
                .unwrap_or_default(),
        ),
        DataType::UInt64 => OutValue::Int(
            any.downcast_ref::<UInt64Array>()
                .map(|a| a.value(i))
                .unwrap_or_default() as i64,
        ),
        DataType::Float32 => OutValue::Float(
            any.downcast_ref::<Float32Array>()
                .map(|a| a.value(i))
                .unwrap_or_default() as f64,
        ),
        DataType::Float64 => OutValue::Float(
            any.downcast_ref::<Float64Array>()
                .map(|a| a.value(i))
                .unwrap_or_default(),
        ),
        DataType::Decimal128(_, s) => OutValue::Decimal(Decimal {
            mantissa: any
                .downcast_ref::<Decimal128Array>()
                .map(|a| a.value(i))
                .unwrap_or_default(),
            scale: (*s).max(0) as u32,
        }),
        DataType::Utf8 => OutValue::Text(
            any.downcast_ref::<StringArray>()
                .map(|a| a.value(i).to_string())
                .unwrap_or_default(),
        ),
        DataType::Utf8View => OutValue::Text(
            any.downcast_ref::<StringViewArray>()
                .map(|a| a.value(i).to_string())
                .unwrap_or_default(),
        ),
        DataType::LargeUtf8 => OutValue::Text(
            any.downcast_ref::<LargeStringArray>()
                .map(|a| a.value(i).to_string())
                .unwrap_or_default(),
        ),
        DataType::Boolean => OutValue::Bool(
            any.downcast_ref::<BooleanArray>()
                .map(|a| a.value(i))
                .unwrap_or_default(),
        ),
        DataType::Date32 => OutValue::Date(
            any.downcast_ref::<Date32Array>()
                .map(|a| a.value(i))
                .unwrap_or_default(),
        ),
        DataType::Timestamp(_, _) => OutValue::Timestamp(
            any.downcast_ref::<TimestampMicrosecondArray>()
                .map(|a| a.value(i))
                .unwrap_or_default(),
        ),
        other => {
            return Err(ExecError::Internal(format!(
                "unexpected merged type {other}"
            )))
        }
    })
}

/// Encodes a computed value as PostgreSQL type `type_oid` in wire `format` (0 text, 1 binary).
/// `None` for NULL.
pub fn encode_value(
    v: &OutValue,
    type_oid: u32,
    format: i16,
) -> Result<Option<Vec<u8>>, ExecError> {
    let binary = format == 1;
    let mismatch = || ExecError::Internal(format!("cannot encode {v:?} as type OID {type_oid}"));
    Ok(Some(match (v, type_oid) {
        (OutValue::Null, _) => return Ok(None),
        (OutValue::Int(i), oid::INT8) => {
            if binary {
                i.to_be_bytes().to_vec()
            } else {
                i.to_string().into_bytes()
            }
        }
        (OutValue::Int(i), oid::INT4) => {
            if binary {
                (*i as i32).to_be_bytes().to_vec()
            } else {
                i.to_string().into_bytes()
            }
        }
        (OutValue::Int(i), oid::INT2) => {
            if binary {
                (*i as i16).to_be_bytes().to_vec()
            } else {
                i.to_string().into_bytes()
            }
        }
        (OutValue::Int(i), oid::NUMERIC) => {
            let d = Decimal {
                mantissa: *i as i128,
                scale: 0,
            };
            if binary {
                numeric_to_binary(d)
            } else {
                numeric_to_text(d).into_bytes()
            }
        }
        (OutValue::Decimal(d), oid::NUMERIC) => {
            if binary {
                numeric_to_binary(*d)
            } else {
                numeric_to_text(*d).into_bytes()
            }
        }
        (OutValue::Float(f), oid::FLOAT8) => {
            if binary {
                f.to_be_bytes().to_vec()
            } else {
                float8_to_text(*f).into_bytes()
            }
        }
        (OutValue::Float(f), oid::FLOAT4) => {
            if binary {
                (*f as f32).to_be_bytes().to_vec()
            } else {
                float4_to_text(*f as f32).into_bytes()
            }
        }
        (OutValue::Text(s), _) => s.clone().into_bytes(),
        (OutValue::Bool(b), oid::BOOL) => {
            if binary {
                vec![*b as u8]
            } else {
                if *b {
                    b"t".to_vec()
                } else {
                    b"f".to_vec()
                }
            }
        }
        (OutValue::Date(d), oid::DATE) => {
            if binary {
                (d - PG_EPOCH_DAYS).to_be_bytes().to_vec()
            } else {
                date_to_text(*d).into_bytes()
            }
        }
        (OutValue::Timestamp(t), oid::TIMESTAMP) => {
            if binary {
                (t - PG_EPOCH_MICROS).to_be_bytes().to_vec()
            } else {
                timestamp_to_text(*t).into_bytes()
            }
        }
        _ => return Err(mismatch()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avg_scale_matches_postgres() {
        // SELECT avg(x) FROM (VALUES (1),(2)) t(x) → 1.5000000000000000
        let d = numeric_avg(
            Decimal {
                mantissa: 3,
                scale: 0,
            },
            2,
        )
        .unwrap();
        assert_eq!(numeric_to_text(d), "1.5000000000000000");
        // avg of 25.50 and 26.00 → 25.7500000000000000
        let d = numeric_avg(
            Decimal {
                mantissa: 5150,
                scale: 2,
            },
            2,
        )
        .unwrap();
        assert_eq!(numeric_to_text(d), "25.7500000000000000");
    }

    #[test]
    fn float_text_matches_postgres() {
        assert_eq!(float8_to_text(1e15), "1e+15");
        assert_eq!(float8_to_text(1e14), "100000000000000");
        assert_eq!(float8_to_text(0.0001), "0.0001");
        assert_eq!(float8_to_text(0.00001), "1e-05");
        assert_eq!(float8_to_text(-1.5), "-1.5");
        assert_eq!(float8_to_text(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn numeric_binary_round_trip() {
        for (m, s) in [
            (0i128, 0u32),
            (12345, 2),
            (-1, 4),
            (100000000, 0),
            (5, 5),
            (123456789012345678, 6),
        ] {
            let d = Decimal {
                mantissa: m,
                scale: s,
            };
            assert_eq!(
                numeric_from_binary(&numeric_to_binary(d)).unwrap(),
                d,
                "{m} {s}"
            );
        }
    }

    #[test]
    fn dates() {
        assert_eq!(date_to_text(0), "1970-01-01");
        assert_eq!(date_to_text(PG_EPOCH_DAYS), "2000-01-01");
        assert_eq!(timestamp_to_text(1_500_000), "1970-01-01 00:00:01.5");
    }
}
