//! Which names may become part of a queue name or a routing key.

/// The longest namespace, template or step name we accept. Queue names are
/// limited to 255 bytes; this leaves room for the `tasker.steps.` prefix.
pub const MAX_NAME_LEN: usize = 100;

/// Why `name` cannot be used as part of a queue name or routing key, if it
/// cannot.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty; give it a name".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "is {} bytes long; shorten it to {MAX_NAME_LEN} bytes or fewer",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Some(format!(
            "contains {bad:?}; use only ASCII letters, digits, '_' and '-'"
        ));
    }
    None
}

/// The candidate closest to `word`, if one is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (c, strsim::jaro_winkler(word, c)))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_a_queue() {
        assert_eq!(name_problem("user_registration"), None);
        assert_eq!(name_problem("customer-success2"), None);
        assert!(name_problem("").is_some());
        assert!(name_problem("has space").unwrap().contains("' '"));
        assert!(name_problem("a.b").unwrap().contains("'.'"));
        assert!(name_problem(&"x".repeat(101)).is_some());
    }

    #[test]
    fn suggests_close_names_only() {
        let known = ["setup_billing_profile", "initialize_preferences"];
        assert_eq!(closest("setup_biling", known), Some("setup_billing_profile"));
        assert_eq!(closest("zzz", known), None);
    }
}
