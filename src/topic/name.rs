//! Topic names, checked as Kafka checks them (`org.apache.kafka.common.internals.Topic`):
//! 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`. Names that differ only by `.`
//! versus `_` collide ([`collision_key`]).

use crate::error::{Error, Result};

/// The longest topic name Kafka accepts (a partition directory `<name>-<partition>` must
/// still fit in a 255-byte file name).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks `name` against Kafka's rules; [`Error::InvalidTopicName`] says which it breaks.
///
/// ```
/// use streamlog::topic::validate_topic_name;
/// assert!(validate_topic_name("orders.v2_eu-west").is_ok());
/// assert!(validate_topic_name("..").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<()> {
    let refuse = |reason: String| {
        Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty".into());
    }
    if name == "." || name == ".." {
        return refuse("'.' and '..' are not allowed".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return refuse(format!(
            "{c:?} is not allowed: only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return refuse(format!(
            "it is {} characters long; the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// The name with every `.` replaced by `_`: two topics whose keys are equal collide, and
/// the second is refused with [`Error::TopicCollision`].
///
/// ```
/// use streamlog::topic::collision_key;
/// assert_eq!(collision_key("a.b_c"), collision_key("a_b.c"));
/// ```
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(name: &str) -> String {
        match validate_topic_name(name) {
            Err(Error::InvalidTopicName { name: n, reason }) => {
                assert_eq!(n, name);
                reason
            }
            other => panic!("{name:?} gave {other:?}"),
        }
    }

    #[test]
    fn kafka_legal_names_are_accepted() {
        for name in ["a", "orders", "Orders-2024_v1.eu", "...", "_", "-", "a..b"] {
            validate_topic_name(name).unwrap();
        }
        validate_topic_name(&"x".repeat(249)).unwrap();
    }

    #[test]
    fn illegal_names_are_refused_with_the_rule_broken() {
        assert!(reason("").contains("empty"));
        assert!(reason(".").contains("not allowed"));
        assert!(reason("..").contains("not allowed"));
        assert!(reason(&"x".repeat(250)).contains("250"));
        for name in ["a b", "a/b", "a\\b", "é", "a:b", "a\0"] {
            assert!(reason(name).contains("only ASCII"), "{name:?}");
        }
    }

    #[test]
    fn dot_and_underscore_collide() {
        assert_eq!(collision_key("metrics.cpu"), "metrics_cpu");
        assert_eq!(collision_key("metrics.cpu"), collision_key("metrics_cpu"));
        assert_ne!(collision_key("metrics-cpu"), collision_key("metrics_cpu"));
    }
}
