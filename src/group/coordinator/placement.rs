//! Which `__consumer_offsets` partition holds a group: `abs(javaStringHashCode(group_id)) %
//! partitions`, with Kafka's `Utils.abs` (which maps `i32::MIN` to 0).

/// Java's `String.hashCode`: `h = 31 * h + c` over the UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition of `group_id` among `partitions` (at least 1).
///
/// ```
/// use streamlog::group::coordinator::partition_for_group;
/// assert_eq!(partition_for_group("foo", 10), 4); // "foo".hashCode() = 101574
/// ```
pub fn partition_for_group(group_id: &str, partitions: u32) -> u32 {
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN {
        0
    } else {
        hash.unsigned_abs()
    };
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        assert_eq!(java_string_hash("foo"), 101_574);
        assert_eq!(java_string_hash(""), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs maps it to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
    }
}
