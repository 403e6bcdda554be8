//! Which `__consumer_offsets` partition holds a group: Java's `String.hashCode` of the
//! group id, made non-negative with Kafka's `Utils.abs`, modulo the partition count.

/// Java's `String.hashCode`: `h = 31 * h + c` over the string's UTF-16 code units, with
/// 32-bit wrapping arithmetic. A character outside the Basic Multilingual Plane counts as
/// its two surrogates, as in Java.
///
/// ```
/// use streamlog::java_string_hash_code;
/// assert_eq!(java_string_hash_code("foo"), 101_574);
/// assert_eq!(java_string_hash_code(""), 0);
/// ```
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `Utils.abs`: the absolute value, with `i32::MIN` mapped to 0 (not to itself).
fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN { 0 } else { n.abs() }
}

/// The `__consumer_offsets` partition of `group_id` among `partitions`:
/// `Utils.abs(groupId.hashCode()) % partitions`, as Kafka's group coordinator computes it
/// (Kafka's `abs`, not the `& 0x7fffffff` of its record partitioner: for a negative hash
/// the two differ). `partitions` of 0 is treated as 1.
///
/// ```
/// use streamlog::partition_for_group;
/// assert_eq!(partition_for_group("foo", 10), 4); // 101574 % 10
/// ```
pub fn partition_for_group(group_id: &str, partitions: u32) -> u32 {
    let hash = kafka_abs(java_string_hash_code(group_id)) as u32;
    hash % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_strings_hash_as_in_java() {
        assert_eq!(java_string_hash_code("foo"), 101_574);
        assert_eq!(java_string_hash_code("a"), 97);
        assert_eq!(java_string_hash_code("hello"), 99_162_322);
        assert_eq!(partition_for_group("foo", 10), 4);
        assert_eq!(partition_for_group("foo", 50), 101_574 % 50);
    }

    #[test]
    fn non_ascii_strings_hash_their_utf16_units() {
        assert_eq!(java_string_hash_code("é"), 0xe9);
        // 日 U+65E5, 本 U+672C.
        assert_eq!(java_string_hash_code("日本"), 0x65e5 * 31 + 0x672c);
        // U+1F600 is the surrogate pair D83D DE00 in UTF-16.
        assert_eq!(java_string_hash_code("😀"), 0xd83d * 31 + 0xde00);
    }

    #[test]
    fn negative_hashes_use_kafkas_abs() {
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for_group("polygenelubricants", 7), 0);
        // A plain negative hash: abs, not the sign-bit mask.
        let group = "consumer-group-with-negative-hash";
        let h = java_string_hash_code(group);
        assert!(h < 0, "pick another string: {h}");
        assert_eq!(partition_for_group(group, 50), h.unsigned_abs() % 50);
        assert_eq!(partition_for_group("foo", 0), 0);
    }
}
