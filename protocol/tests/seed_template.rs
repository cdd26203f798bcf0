//! The seed's template loads unmodified, with the documented defaults.

use std::time::Duration;

use tasker_protocol::{Backoff, TaskTemplate};

const SEED: &str = include_str!("../../templates/microservices/user_registration.yaml");

#[test]
fn the_seed_template_loads_as_is() {
    let t = TaskTemplate::from_yaml("user_registration.yaml", SEED).unwrap();
    assert_eq!(t.key(), "microservices/user_registration@1.0.0");
    let names: Vec<&str> = t.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "create_user_account",
            "setup_billing_profile",
            "initialize_preferences",
            "send_welcome_sequence",
            "update_user_status"
        ]
    );
    let welcome = t.step_index("send_welcome_sequence").unwrap();
    assert_eq!(t.dag.ancestors(welcome), [0, 1, 2]);
    assert_eq!(t.steps[welcome].retry.max_attempts, 2);
    assert_eq!(t.steps[welcome].retry.max_delay, Duration::from_secs(20));
    // update_user_status gives no delays: the defaults apply.
    let update = &t.steps[4];
    assert_eq!(update.retry.backoff, Backoff::Exponential);
    assert_eq!(update.retry.initial_delay, Duration::from_secs(1));
    assert_eq!(update.retry.max_delay, Duration::from_secs(300));
    assert_eq!(update.timeout, None);
    assert_eq!(
        t.steps[0].callable,
        "Microservices::StepHandlers::CreateUserAccountHandler"
    );
}

#[test]
fn a_typo_in_a_dependency_is_explained() {
    let bad = SEED.replacen("      - setup_billing_profile\n", "      - setup_biling\n", 1);
    let err = TaskTemplate::from_yaml("bad.yaml", &bad).unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains("bad.yaml:"), "{text}");
    assert!(
        text.contains(r#"depends on unknown step "setup_biling" (did you mean "setup_billing_profile"?)"#),
        "{text}"
    );
}
