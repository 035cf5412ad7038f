//! PostgreSQL's hash functions, bit for bit, so that Tessera places rows in the same shards as
//! Citus does.
//!
//! `hash_bytes` and `hash_bytes_uint32` are Bob Jenkins' lookup3 as PostgreSQL 15 implements it
//! in `src/common/hashfn.c`; the per-type wrappers follow `src/backend/access/hash/hashfunc.c`
//! (`hashint2`, `hashint4`, `hashint8`, `hashtext`, `hashbpchar`) and `src/backend/utils/adt/uuid.c`
//! (`uuid_hash`). Results are read as int32, as PostgreSQL returns them from SQL.

#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

#[inline]
fn word(k: &[u8]) -> u32 {
    u32::from_le_bytes([k[0], k[1], k[2], k[3]])
}

/// PostgreSQL's `hash_bytes` (lookup3, little-endian byte order as on x86-64 and arm64).
/// Source: PostgreSQL 15 `src/common/hashfn.c`.
pub fn hash_bytes(key: &[u8]) -> u32 {
    let len = key.len() as u32;
    let init = 0x9e37_79b9_u32.wrapping_add(len).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut k = key;
    while k.len() >= 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    // The last 0..11 bytes; the lowest byte of c is reserved for the length.
    let byte = |i: usize| k[i] as u32;
    let rest = k.len();
    if rest >= 11 {
        c = c.wrapping_add(byte(10) << 24);
    }
    if rest >= 10 {
        c = c.wrapping_add(byte(9) << 16);
    }
    if rest >= 9 {
        c = c.wrapping_add(byte(8) << 8);
    }
    if rest >= 8 {
        b = b.wrapping_add(byte(7) << 24);
    }
    if rest >= 7 {
        b = b.wrapping_add(byte(6) << 16);
    }
    if rest >= 6 {
        b = b.wrapping_add(byte(5) << 8);
    }
    if rest >= 5 {
        b = b.wrapping_add(byte(4));
    }
    if rest >= 4 {
        a = a.wrapping_add(byte(3) << 24);
    }
    if rest >= 3 {
        a = a.wrapping_add(byte(2) << 16);
    }
    if rest >= 2 {
        a = a.wrapping_add(byte(1) << 8);
    }
    if rest >= 1 {
        a = a.wrapping_add(byte(0));
    }
    final_mix(&mut a, &mut b, &mut c);
    c
}

/// PostgreSQL's `hash_bytes_uint32`: lookup3 of one 32-bit word.
/// Source: PostgreSQL 15 `src/common/hashfn.c`.
pub fn hash_bytes_uint32(k: u32) -> u32 {
    let init = 0x9e37_79b9_u32.wrapping_add(4).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init.wrapping_add(k), init, init);
    final_mix(&mut a, &mut b, &mut c);
    c
}

/// PostgreSQL's `hashint2`: the value widened to int32, then `hash_bytes_uint32`.
pub fn hash_int2(v: i16) -> i32 {
    hash_bytes_uint32(v as i32 as u32) as i32
}

/// PostgreSQL's `hashint4` (Citus' `worker_hash` for int4: `worker_hash(123)` = -205084363).
pub fn hash_int4(v: i32) -> i32 {
    hash_bytes_uint32(v as u32) as i32
}

/// PostgreSQL's `hashint8`: folds the high 32 bits into the low 32 bits (complemented for
/// negative values, so that int8 and int4 hash alike for values that fit both), then
/// `hash_bytes_uint32`. Same int32 as `SELECT hashint8($1)` (src/backend/access/hash/hashfunc.c).
pub fn hash_int8(v: i64) -> i32 {
    let lo = v as u32;
    let hi = (v >> 32) as u32;
    let folded = if v >= 0 { lo ^ hi } else { lo ^ !hi };
    hash_bytes_uint32(folded) as i32
}

/// PostgreSQL's `hashtext` for a deterministic collation: `hash_bytes` of the UTF-8 bytes.
/// Also used for `varchar`.
pub fn hash_text(v: &str) -> i32 {
    hash_bytes(v.as_bytes()) as i32
}

/// PostgreSQL's `hashbpchar`: trailing spaces are not significant for `char(n)`.
pub fn hash_bpchar(v: &str) -> i32 {
    hash_text(v.trim_end_matches(' '))
}

/// PostgreSQL's `uuid_hash`: `hash_bytes` of the 16 bytes (src/backend/utils/adt/uuid.c).
pub fn hash_uuid(v: &[u8; 16]) -> i32 {
    hash_bytes(v) as i32
}

/// Hash of a `date`: PostgreSQL's hash opclass for date uses `hashint4` on the day number
/// (days since 2000-01-01).
pub fn hash_date(days_since_2000: i32) -> i32 {
    hash_int4(days_since_2000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citus_worker_hash_of_123() {
        assert_eq!(hash_int4(123), -205084363);
    }

    #[test]
    fn int8_folds_like_int4_for_small_values() {
        for v in [-5i64, -1, 0, 1, 42, 1 << 20] {
            assert_eq!(hash_int8(v), hash_int4(v as i32), "{v}");
        }
    }
}
