//! Splitting the int32 hash space into shard ranges, exactly as Citus does.
//!
//! `shard_count` shards split the range evenly: `increment = 2^32 / shard_count` (integer
//! division); shard `i` covers `[i32::MIN + i*increment, i32::MIN + (i+1)*increment - 1]` and
//! the last shard ends at `i32::MAX`. Source: Citus `CreateShardsWithRoundRobinPolicy` and
//! `FindShardIntervalIndex` (uniform hash distribution).

/// Inclusive `[min, max]` hash range of shard `index` out of `shard_count`.
///
/// Panics if `shard_count == 0` or `index >= shard_count` (callers validate user input first).
pub fn shard_range(index: u32, shard_count: u32) -> (i32, i32) {
    assert!(shard_count > 0 && index < shard_count);
    let increment = (1u64 << 32) / shard_count as u64;
    let min = i32::MIN as i64 + index as i64 * increment as i64;
    let max = if index == shard_count - 1 {
        i32::MAX as i64
    } else {
        min + increment as i64 - 1
    };
    (min as i32, max as i32)
}

/// Index of the shard (0-based) whose range holds `hash`, for `shard_count` uniform shards.
pub fn shard_index(hash: i32, shard_count: u32) -> u32 {
    let increment = (1u64 << 32) / shard_count as u64;
    let offset = (hash as i64 - i32::MIN as i64) as u64;
    ((offset / increment) as u32).min(shard_count - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_int32_without_gaps() {
        for n in [1u32, 2, 3, 7, 32, 128] {
            let mut next = i32::MIN as i64;
            for i in 0..n {
                let (lo, hi) = shard_range(i, n);
                assert_eq!(lo as i64, next);
                assert!(hi >= lo);
                next = hi as i64 + 1;
            }
            assert_eq!(next, i32::MAX as i64 + 1);
        }
    }

    #[test]
    fn citus_32_shard_boundaries() {
        assert_eq!(shard_range(0, 32), (-2147483648, -2013265921));
        assert_eq!(shard_range(31, 32), (2013265920, 2147483647));
    }

    #[test]
    fn index_agrees_with_ranges() {
        for n in [1u32, 3, 32] {
            for h in [
                i32::MIN,
                -1,
                0,
                1,
                12345,
                i32::MAX,
                -2013265921,
                -2013265920,
            ] {
                let i = shard_index(h, n);
                let (lo, hi) = shard_range(i, n);
                assert!(lo <= h && h <= hi, "{h} in shard {i} of {n}");
            }
        }
    }
}
