//! The URLs of the broker's nodes: one, or a cluster's several in one
//! setting; and how they show in logs.

/// The URLs of the nodes that `urls` names: one URL, or several separated
/// by commas (`amqp://n1:5672/%2f,amqp://n2:5672/%2f`), each the URL of a
/// node of one cluster. Spaces around them are ignored. A comma in a
/// password must be written `%2C`.
#[must_use]
pub fn broker_urls(urls: &str) -> Vec<&str> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

/// `url` with its password replaced by `***`, for logs and messages; each
/// of them, for several URLs separated by commas.
#[must_use]
pub fn redact_url(url: &str) -> String {
    if url.contains(',') {
        return broker_urls(url)
            .into_iter()
            .map(redact_url)
            .collect::<Vec<_>>()
            .join(",");
    }
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact_url("rediss://:pw@cache:6380"), "rediss://:***@cache:6380");
        assert_eq!(redact_url("amqp://host"), "amqp://host");
        assert!(!redact_url("not a url with secret").contains("secret"));
        assert_eq!(
            redact_url("amqp://u:pw@n1:5672/%2f, amqp://u:pw@n2:5673/%2f"),
            "amqp://u:***@n1:5672/%2f,amqp://u:***@n2:5673/%2f"
        );
    }

    #[test]
    fn several_urls_name_a_cluster_s_nodes() {
        assert_eq!(
            broker_urls("amqp://n1:5672/%2f, amqp://n2:5672/%2f,"),
            ["amqp://n1:5672/%2f", "amqp://n2:5672/%2f"]
        );
        assert_eq!(broker_urls("amqp://host"), ["amqp://host"]);
        assert!(broker_urls(" ").is_empty());
    }
}
