//! Every template validation error, one test each: the message names the
//! file, the line, the offending item, and the fix.
//!
//! The fixtures are in `tests/fixtures/templates/`; `docs/templates.md`
//! quotes the messages asserted here.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use tasker_protocol::template::{TemplateIssue, parse_all};
use tasker_protocol::{LookupError, TaskTemplate, TemplateError, TemplateRegistry};

const SEED: &str = include_str!("../../templates/microservices/user_registration.yaml");

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/templates")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn rejected(file: &str, text: &str) -> TemplateError {
    match TaskTemplate::from_yaml(file, text) {
        Ok(t) => panic!("{file} loaded as {}, but it is invalid", t.key()),
        Err(e) => {
            eprintln!("{e}");
            e
        }
    }
}

/// Checks what every message must be: lowercase first, no trailing period,
/// and shown as `file:line: message` when the line is known.
fn assert_style(err: &TemplateError) {
    let shown = err.to_string();
    let shown: Vec<&str> = shown.lines().collect();
    assert_eq!(
        shown.len(),
        err.issues.len(),
        "one line per issue:\n{}",
        shown.join("\n")
    );
    for (issue, shown) in err.issues.iter().zip(shown) {
        let prefix = match issue.line {
            Some(line) => format!("{}:{line}: ", err.file),
            None => format!("{}: ", err.file),
        };
        assert!(
            shown.starts_with(&prefix),
            "{shown:?} does not start with {prefix:?}"
        );
        assert!(
            issue.message.starts_with(|c: char| c.is_lowercase()),
            "{:?} is not lowercase first",
            issue.message
        );
        assert!(
            !issue.message.ends_with('.'),
            "{:?} ends with a period",
            issue.message
        );
    }
}

/// One expected issue: its line, the text the line holds, and phrases the
/// message must contain (the offending item and the fix).
struct Expect<'a> {
    line: usize,
    at: &'a str,
    says: &'a [&'a str],
}

/// Asserts that `issue` is `expect`, in file `text`.
fn assert_issue(text: &str, issue: &TemplateIssue, expect: &Expect<'_>) {
    assert_eq!(
        issue.line,
        Some(expect.line),
        "wrong line for {:?}",
        issue.message
    );
    let held = text.lines().nth(expect.line - 1).unwrap_or_default();
    assert!(
        held.contains(expect.at),
        "line {} is {held:?}, not the offending {:?}",
        expect.line,
        expect.at
    );
    for phrase in expect.says {
        assert!(
            issue.message.contains(phrase),
            "{:?} does not say {phrase:?}",
            issue.message
        );
    }
}

/// Loads fixture `name`, which must fail with exactly the one issue `expect`.
fn assert_single(name: &str, expect: &Expect<'_>) -> String {
    let text = fixture(name);
    assert_single_text(name, &text, expect)
}

fn assert_single_text(name: &str, text: &str, expect: &Expect<'_>) -> String {
    let err = rejected(name, text);
    assert_style(&err);
    assert_eq!(err.file, name);
    assert_eq!(err.issues.len(), 1, "expected one issue, got:\n{err}");
    assert_issue(text, &err.issues[0], expect);
    err.to_string()
}

const LABEL: &str = "template microservices/user_registration@1.0.0: ";

// Unknown keys: serde finds them; the message suggests the key meant.

#[test]
fn unknown_key_at_template_level() {
    let shown = assert_single(
        "unknown_key_template.yaml",
        &Expect {
            line: 2,
            at: "namespace: microservices",
            says: &[
                r#"unknown key "namespace" in the template"#,
                r#"(did you mean "namespace_name"?)"#,
            ],
        },
    );
    assert_eq!(
        shown,
        r#"unknown_key_template.yaml:2: unknown key "namespace" in the template (did you mean "namespace_name"?); the keys allowed there are "name", "namespace_name", "version", "description", "steps""#
    );
}

#[test]
fn unknown_key_at_step_level() {
    assert_single(
        "unknown_key_step.yaml",
        &Expect {
            line: 14,
            at: "dependecies:",
            says: &[
                LABEL,
                r#"unknown key "dependecies" in step "setup_billing_profile" (did you mean "dependencies"?)"#,
                r#""name", "description", "handler", "dependencies", "retry", "timeout_seconds""#,
            ],
        },
    );
}

#[test]
fn unknown_key_at_handler_level() {
    assert_single(
        "unknown_key_handler.yaml",
        &Expect {
            line: 9,
            at: "initialisation:",
            says: &[
                LABEL,
                r#"unknown key "initialisation" in the handler of step "create_user_account" (did you mean "initialization"?)"#,
                r#"the keys allowed there are "callable", "initialization""#,
            ],
        },
    );
}

#[test]
fn unknown_key_at_retry_level() {
    let shown = assert_single(
        "unknown_key_retry.yaml",
        &Expect {
            line: 11,
            at: "max_attemps: 3",
            says: &[
                r#"unknown key "max_attemps" in the retry of step "create_user_account" (did you mean "max_attempts"?)"#,
            ],
        },
    );
    assert_eq!(
        shown,
        format!(
            r#"unknown_key_retry.yaml:11: {LABEL}unknown key "max_attemps" in the retry of step "create_user_account" (did you mean "max_attempts"?); the keys allowed there are "retryable", "max_attempts", "backoff", "initial_delay", "max_delay""#
        )
    );
}

#[test]
fn unknown_key_with_no_close_match_says_to_remove_it() {
    assert_single(
        "unknown_key_no_suggestion.yaml",
        &Expect {
            line: 11,
            at: "circuit_breaker: true",
            says: &[
                r#"unknown key "circuit_breaker" in the retry of step "create_user_account"; remove it"#,
                r#""retryable", "max_attempts", "backoff", "initial_delay", "max_delay""#,
            ],
        },
    );
}

#[test]
fn a_missing_required_key_is_named() {
    let text = SEED.replace(
        "      callable: Microservices::StepHandlers::SetupBillingProfileHandler\n",
        "",
    );
    // serde places a missing key where its mapping is.
    assert_single_text(
        "no_callable.yaml",
        &text,
        &Expect {
            line: 23,
            at: "handler:",
            says: &[
                LABEL,
                r#"the handler of step "setup_billing_profile" has no "callable"; add it"#,
            ],
        },
    );
}

#[test]
fn broken_yaml_is_reported_with_its_line() {
    // `max_attempts` is indented one space short.
    let text = SEED.replacen(
        "      retryable: true\n      max_attempts: 2\n",
        "      retryable: true\n     max_attempts: 2\n",
        1,
    );
    assert_single_text(
        "broken.yaml",
        &text,
        &Expect {
            line: 57,
            at: "     max_attempts: 2",
            says: &[
                "the file is not valid YAML: did not find expected key; fix the indentation, quoting or `key: value` syntax near this line",
            ],
        },
    );
}

// Semantic errors: found after parsing, all of them at once.

#[test]
fn duplicate_step() {
    assert_single(
        "duplicate_step.yaml",
        &Expect {
            line: 16,
            at: "- name: setup_billing_profile",
            says: &[
                LABEL,
                r#"step "setup_billing_profile" is defined twice (first at line 10)"#,
                "rename one of them or merge them",
            ],
        },
    );
}

#[test]
fn dependency_on_unknown_step() {
    let shown = assert_single(
        "unknown_dependency.yaml",
        &Expect {
            line: 21,
            at: "- setup_biling",
            says: &[],
        },
    );
    assert_eq!(
        shown,
        format!(
            r#"unknown_dependency.yaml:21: {LABEL}step "send_welcome_sequence" depends on unknown step "setup_biling" (did you mean "setup_billing_profile"?)"#
        )
    );
}

#[test]
fn dependency_on_unknown_step_with_no_close_match_lists_the_steps() {
    let text = fixture("unknown_dependency.yaml").replace("- setup_biling", "- charge_card");
    assert_single_text(
        "unknown_dependency.yaml",
        &text,
        &Expect {
            line: 21,
            at: "- charge_card",
            says: &[
                r#"depends on unknown step "charge_card"; depend on one of the steps of this template: "create_user_account", "setup_billing_profile", "send_welcome_sequence""#,
            ],
        },
    );
}

#[test]
fn cycle_prints_its_path() {
    let shown = assert_single(
        "cycle.yaml",
        &Expect {
            line: 17,
            at: "- send_welcome_sequence",
            says: &[
                "the dependencies form a cycle: setup_billing_profile → send_welcome_sequence → setup_billing_profile",
                "remove one of these dependencies",
            ],
        },
    );
    assert_eq!(
        shown,
        format!(
            "cycle.yaml:17: {LABEL}the dependencies form a cycle: setup_billing_profile → send_welcome_sequence → setup_billing_profile (each step waits for the one before it); remove one of these dependencies"
        )
    );
}

#[test]
fn a_step_that_depends_on_itself_is_a_cycle() {
    let text = SEED.replacen(
        "      - initialize_preferences\n",
        "      - send_welcome_sequence\n",
        1,
    );
    assert_single_text(
        "self.yaml",
        &text,
        &Expect {
            line: 54,
            at: "- send_welcome_sequence",
            says: &["the dependencies form a cycle: send_welcome_sequence → send_welcome_sequence"],
        },
    );
}

#[test]
fn no_root_step() {
    let text = fixture("no_root.yaml");
    let err = rejected("no_root.yaml", &text);
    assert_style(&err);
    // Every step waiting for another is always a cycle too; both are said,
    // in the order of the file.
    assert_eq!(err.issues.len(), 2, "{err}");
    assert_issue(
        &text,
        &err.issues[0],
        &Expect {
            line: 5,
            at: "steps:",
            says: &[
                LABEL,
                "no step is a root (every step has dependencies), so nothing could start",
                "give the step that should run first `dependencies: []`",
            ],
        },
    );
    assert_issue(
        &text,
        &err.issues[1],
        &Expect {
            line: 9,
            at: "dependencies: [update_user_status]",
            says: &["cycle: create_user_account → update_user_status → create_user_account"],
        },
    );
}

#[test]
fn max_attempts_below_one() {
    let shown = assert_single(
        "max_attempts_zero.yaml",
        &Expect {
            line: 11,
            at: "max_attempts: 0",
            says: &[],
        },
    );
    assert_eq!(
        shown,
        format!(
            r#"max_attempts_zero.yaml:11: {LABEL}step "create_user_account" has max_attempts 0; it counts every attempt, the first included, so make it at least 1"#
        )
    );
    let negative = fixture("max_attempts_zero.yaml").replace("max_attempts: 0", "max_attempts: -2");
    assert_single_text(
        "negative.yaml",
        &negative,
        &Expect {
            line: 11,
            at: "max_attempts: -2",
            says: &["has max_attempts -2", "make it at least 1"],
        },
    );
}

#[test]
fn initial_delay_above_max_delay() {
    // The first step's delays are fine; the line is the second step's.
    let shown = assert_single(
        "initial_delay_above_max.yaml",
        &Expect {
            line: 21,
            at: "initial_delay: 60",
            says: &[],
        },
    );
    assert_eq!(
        shown,
        format!(
            r#"initial_delay_above_max.yaml:21: {LABEL}step "setup_billing_profile" has initial_delay 60 greater than max_delay 30; raise max_delay or lower initial_delay"#
        )
    );
}

#[test]
fn max_delay_below_the_default_initial_delay_points_at_max_delay() {
    let text = fixture("max_attempts_zero.yaml").replace("max_attempts: 0", "max_delay: 0.5");
    assert_single_text(
        "max_delay.yaml",
        &text,
        &Expect {
            line: 11,
            at: "max_delay: 0.5",
            says: &["has initial_delay 1 greater than max_delay 0.5; raise max_delay or lower initial_delay"],
        },
    );
}

#[test]
fn an_initial_delay_above_the_default_max_delay_raises_it() {
    let text = fixture("max_attempts_zero.yaml").replace("max_attempts: 0", "initial_delay: 400");
    let t = TaskTemplate::from_yaml("slow.yaml", &text).unwrap();
    assert_eq!(t.steps[0].retry.initial_delay, Duration::from_secs(400));
    assert_eq!(t.steps[0].retry.max_delay, Duration::from_secs(400));
}

#[test]
fn negative_or_huge_delays() {
    let base = fixture("max_attempts_zero.yaml");
    let negative = base.replace("max_attempts: 0", "initial_delay: -1");
    assert_single_text(
        "negative.yaml",
        &negative,
        &Expect {
            line: 11,
            at: "initial_delay: -1",
            says: &["has initial_delay -1; give a number of seconds, 0 or more"],
        },
    );
    let huge = base.replace("max_attempts: 0", "max_delay: 1.0e30");
    assert_single_text(
        "huge.yaml",
        &huge,
        &Expect {
            line: 11,
            at: "max_delay: 1.0e30",
            says: &["has max_delay", "give a smaller number of seconds"],
        },
    );
}

#[test]
fn namespace_name_that_cannot_become_a_queue_name() {
    let shown = assert_single(
        "bad_namespace_name.yaml",
        &Expect {
            line: 2,
            at: "namespace_name: micro services",
            says: &[],
        },
    );
    assert_eq!(
        shown,
        r#"bad_namespace_name.yaml:2: template micro services/user_registration@1.0.0: namespace_name "micro services" cannot become part of a queue name: it contains ' '; use only ASCII letters, digits, '_' and '-'"#
    );
}

#[test]
fn name_that_cannot_become_a_queue_name() {
    assert_single(
        "bad_name.yaml",
        &Expect {
            line: 1,
            at: "name: user.registration",
            says: &[
                r#"name "user.registration" cannot become part of a queue name: it contains '.'"#,
                "use only ASCII letters, digits, '_' and '-'",
            ],
        },
    );
}

#[test]
fn step_name_that_cannot_become_a_queue_name() {
    assert_single(
        "bad_step_name.yaml",
        &Expect {
            line: 10,
            at: r#"- name: "send welcome sequence""#,
            says: &[
                LABEL,
                r#"step "send welcome sequence" cannot become part of a queue name: it contains ' '"#,
                "use only ASCII letters, digits, '_' and '-'",
            ],
        },
    );
}

#[test]
fn names_that_are_too_long_or_empty() {
    let long = "n".repeat(101);
    let text = fixture("bad_namespace_name.yaml").replace("micro services", &long);
    assert_single_text(
        "long.yaml",
        &text,
        &Expect {
            line: 2,
            at: "nnnn",
            says: &["it is 101 bytes long; shorten it to 100 bytes or fewer"],
        },
    );
    let exactly = fixture("bad_namespace_name.yaml").replace("micro services", &"n".repeat(100));
    assert!(TaskTemplate::from_yaml("100.yaml", &exactly).is_ok());
    let text = fixture("bad_name.yaml").replace("name: user.registration", r#"name: """#);
    assert_single_text(
        "empty.yaml",
        &text,
        &Expect {
            line: 1,
            at: r#"name: """#,
            says: &[r#"name "" cannot become part of a queue name: it is empty; give it a name"#],
        },
    );
}

#[test]
fn bad_semver() {
    let shown = assert_single(
        "bad_version.yaml",
        &Expect {
            line: 3,
            at: r#"version: "1.0""#,
            says: &[],
        },
    );
    assert_eq!(
        shown,
        r#"bad_version.yaml:3: template microservices/user_registration@1.0: version "1.0" is not semver (unexpected end of input while parsing minor version number); write it as MAJOR.MINOR.PATCH, for example "1.0.0""#
    );
    // YAML reads an unquoted 2.1 as a number; it is still not semver.
    let text = fixture("bad_version.yaml").replace(r#"version: "1.0""#, "version: 2.1");
    assert_single_text(
        "number.yaml",
        &text,
        &Expect {
            line: 3,
            at: "version: 2.1",
            says: &[r#"version "2.1" is not semver"#],
        },
    );
}

#[test]
fn bad_backoff() {
    let shown = assert_single(
        "bad_backoff.yaml",
        &Expect {
            line: 11,
            at: "backoff: exponentail",
            says: &[],
        },
    );
    assert_eq!(
        shown,
        format!(
            r#"bad_backoff.yaml:11: {LABEL}unknown backoff "exponentail" in the retry of step "create_user_account" (did you mean "exponential"?); use one of "exponential", "linear", "fixed", "none""#
        )
    );
    let text = fixture("bad_backoff.yaml").replace("exponentail", "fibonacci");
    assert_single_text(
        "fibonacci.yaml",
        &text,
        &Expect {
            line: 11,
            at: "backoff: fibonacci",
            says: &[
                r#"unknown backoff "fibonacci" in the retry of step "create_user_account"; use one of "exponential", "linear", "fixed", "none""#,
            ],
        },
    );
}

#[test]
fn timeout_seconds_not_above_zero() {
    let shown = assert_single(
        "timeout_zero.yaml",
        &Expect {
            line: 16,
            at: "timeout_seconds: 0",
            says: &[],
        },
    );
    assert_eq!(
        shown,
        format!(
            r#"timeout_zero.yaml:16: {LABEL}step "setup_billing_profile" has timeout_seconds 0; give a number of seconds above 0, or leave it out for no timeout"#
        )
    );
    let negative = fixture("timeout_zero.yaml").replace("timeout_seconds: 0", "timeout_seconds: -0.5");
    assert_single_text(
        "negative.yaml",
        &negative,
        &Expect {
            line: 16,
            at: "timeout_seconds: -0.5",
            says: &["has timeout_seconds -0.5; give a number of seconds above 0"],
        },
    );
    let huge = fixture("timeout_zero.yaml").replace("timeout_seconds: 0", "timeout_seconds: 1.0e30");
    assert_single_text(
        "huge.yaml",
        &huge,
        &Expect {
            line: 16,
            at: "timeout_seconds: 1.0e30",
            says: &["give a smaller number of seconds"],
        },
    );
}

#[test]
fn empty_callable() {
    let text = fixture("bad_version.yaml")
        .replace(r#"version: "1.0""#, "version: 1.0.0")
        .replace(
            "callable: Microservices::StepHandlers::CreateUserAccountHandler",
            r#"callable: """#,
        );
    assert_single_text(
        "empty_callable.yaml",
        &text,
        &Expect {
            line: 8,
            at: "callable:",
            says: &[r#"step "create_user_account" has an empty handler.callable; name the handler"#],
        },
    );
}

#[test]
fn a_file_with_several_problems_reports_all_of_them_in_file_order() {
    let text = fixture("several_problems.yaml");
    let err = rejected("several_problems.yaml", &text);
    assert_style(&err);
    let expected = [
        Expect {
            line: 3,
            at: "version: 1.0",
            says: &[r#"version "1.0" is not semver"#],
        },
        Expect {
            line: 11,
            at: "max_attempts: 0",
            says: &[r#"step "create_user_account" has max_attempts 0"#],
        },
        Expect {
            line: 13,
            at: "- name: setup billing profile",
            says: &[r#"step "setup billing profile" cannot become part of a queue name"#],
        },
        Expect {
            line: 18,
            at: "timeout_seconds: -5",
            says: &["has timeout_seconds -5"],
        },
        Expect {
            line: 24,
            at: "- setup_billing_profile",
            says: &[r#"step "send_welcome_sequence" depends on unknown step "setup_billing_profile""#],
        },
        Expect {
            line: 26,
            at: "initial_delay: 60",
            says: &["has initial_delay 60 greater than max_delay 20"],
        },
    ];
    assert_eq!(err.issues.len(), expected.len(), "{err}");
    for (issue, expect) in err.issues.iter().zip(&expected) {
        assert_issue(&text, issue, expect);
    }
}

#[test]
fn docs_quote_the_real_messages() {
    let docs =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/templates.md"))
            .unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let err = rejected(&name, &std::fs::read_to_string(&path).unwrap());
        for line in err.to_string().lines() {
            assert!(docs.contains(line), "docs/templates.md does not quote:\n{line}");
            checked += 1;
        }
    }
    assert!(checked >= 18);
}

// Lines are found in other YAML layouts too, and never taken from another step.

#[test]
fn lines_are_found_in_flow_style() {
    let text = "name: user_registration
namespace_name: microservices
version: 1.0.0
steps:
- name: create_user_account
  handler: {callable: Microservices::StepHandlers::CreateUserAccountHandler}
  retry: {max_attempts: 3, initial_delay: 2, max_delay: 30}
- handler: {callable: Microservices::StepHandlers::SetupBillingProfileHandler}
  name: setup_billing_profile
  dependencies: [create_user_account, setup_biling]
  retry: {max_attempts: 0}
";
    let err = rejected("flow.yaml", text);
    assert_style(&err);
    assert_eq!(err.issues.len(), 2, "{err}");
    assert_issue(
        text,
        &err.issues[0],
        &Expect {
            line: 10,
            at: "setup_biling]",
            says: &["unknown step \"setup_biling\""],
        },
    );
    assert_issue(
        text,
        &err.issues[1],
        &Expect {
            line: 11,
            at: "{max_attempts: 0}",
            says: &["max_attempts 0"],
        },
    );
}

#[test]
fn a_key_a_step_leaves_out_is_not_looked_for_in_the_next_step() {
    // The first step sets max_delay below the default initial_delay and no
    // initial_delay of its own; the second step's initial_delay must not be
    // blamed.
    let text = "name: user_registration
namespace_name: microservices
version: 1.0.0
steps:
  - name: create_user_account
    handler:
      callable: Microservices::StepHandlers::CreateUserAccountHandler
    retry:
      max_delay: 0.5
  - name: setup_billing_profile
    handler:
      callable: Microservices::StepHandlers::SetupBillingProfileHandler
    dependencies: [create_user_account]
    retry:
      initial_delay: 0.1
      max_delay: 0.5
";
    assert_single_text(
        "two.yaml",
        text,
        &Expect {
            line: 9,
            at: "max_delay: 0.5",
            says: &["create_user_account"],
        },
    );
}

#[test]
fn a_step_named_like_the_template_gets_its_own_line() {
    let text = fixture("bad_step_name.yaml").replace(r#""send welcome sequence""#, "user_registration");
    let text = text.replace("      - create_user_account", "      - create_user_acount");
    assert_single_text(
        "same_name.yaml",
        &text,
        &Expect {
            line: 14,
            at: "- create_user_acount",
            says: &[r#"step "user_registration" depends on unknown step"#],
        },
    );
}

#[test]
fn parse_all_reports_every_invalid_file() {
    let files = [
        ("user_registration.yaml".to_owned(), SEED.to_owned()),
        ("cycle.yaml".to_owned(), fixture("cycle.yaml")),
        (
            "unknown_key_retry.yaml".to_owned(),
            fixture("unknown_key_retry.yaml"),
        ),
        (
            "several_problems.yaml".to_owned(),
            fixture("several_problems.yaml"),
        ),
    ];
    let errors = parse_all(files.iter().map(|(f, t)| (f.as_str(), t.as_str()))).unwrap_err();
    let failed: Vec<(&str, usize)> = errors.iter().map(|e| (e.file.as_str(), e.issues.len())).collect();
    assert_eq!(
        failed,
        [
            ("cycle.yaml", 1),
            ("unknown_key_retry.yaml", 1),
            ("several_problems.yaml", 6)
        ]
    );
    for e in &errors {
        assert_style(e);
    }

    let valid = [
        ("user_registration.yaml", SEED),
        ("initial_delay_ok.yaml", &*SEED.replace("1.0.0", "1.1.0")),
    ];
    let templates = parse_all(valid).unwrap();
    let keys: Vec<String> = templates.iter().map(TaskTemplate::key).collect();
    assert_eq!(
        keys,
        [
            "microservices/user_registration@1.0.0",
            "microservices/user_registration@1.1.0"
        ]
    );
}

// Random DAGs agree with a reference check.

/// Steps `0..n` by index; a dependency `>= n` names a step that does not exist.
fn template_yaml(deps: &[Vec<usize>], flow: &[bool]) -> String {
    let mut yaml = String::from("name: random\nnamespace_name: prop\nversion: 1.0.0\nsteps:\n");
    for (i, ds) in deps.iter().enumerate() {
        let names: Vec<String> = ds.iter().map(|d| format!("step_{d}")).collect();
        yaml.push_str(&format!(
            "  - name: step_{i}\n    handler:\n      callable: Prop::Step\n"
        ));
        if flow[i] {
            yaml.push_str(&format!("    dependencies: [{}]\n", names.join(", ")));
        } else if !names.is_empty() {
            yaml.push_str("    dependencies:\n");
            for n in &names {
                yaml.push_str(&format!("      - {n}\n"));
            }
        }
    }
    yaml
}

/// A template is valid iff every dependency names a step, at least one step
/// has none, and repeatedly removing steps whose dependencies are all
/// removed removes every step.
fn reference_valid(deps: &[Vec<usize>]) -> bool {
    let n = deps.len();
    if deps.iter().flatten().any(|&d| d >= n) || deps.iter().all(|ds| !ds.is_empty()) {
        return false;
    }
    let mut removed = vec![false; n];
    while let Some(s) = (0..n).find(|&s| !removed[s] && deps[s].iter().all(|&d| removed[d])) {
        removed[s] = true;
    }
    removed.into_iter().all(|r| r)
}

fn any_template() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<bool>)> {
    (1usize..=30).prop_flat_map(|n| {
        // Each dependency is drawn as (kind, x): mostly an earlier step, so
        // that valid graphs are common; sometimes any step, which may close
        // a cycle; rarely a step that does not exist.
        let deps = proptest::collection::vec(proptest::collection::vec((0u8..20, any::<usize>()), 0..4), n);
        let deps = deps.prop_map(move |steps| {
            steps
                .into_iter()
                .enumerate()
                .map(|(i, ds)| {
                    ds.into_iter()
                        .filter_map(|(kind, x)| match kind {
                            0..=17 => (i > 0).then(|| x % i),
                            18 => Some(x % n),
                            _ => Some(n + x % 2),
                        })
                        .collect()
                })
                .collect::<Vec<Vec<usize>>>()
        });
        (deps, proptest::collection::vec(any::<bool>(), n))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Integration tests have no lib.rs for proptest's default place.
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn random_dags_validate_as_the_reference_says((deps, flow) in any_template()) {
        let yaml = template_yaml(&deps, &flow);
        match TaskTemplate::from_yaml("random.yaml", &yaml) {
            Ok(t) => {
                prop_assert!(reference_valid(&deps), "accepted an invalid template:\n{yaml}");
                prop_assert_eq!(t.steps.len(), deps.len());
                for (s, ds) in deps.iter().enumerate() {
                    let want: BTreeSet<usize> = ds.iter().copied().collect();
                    let got: BTreeSet<usize> = t.dag.parents(s).iter().copied().collect();
                    prop_assert_eq!(got, want);
                }
            }
            Err(e) => {
                prop_assert!(!reference_valid(&deps), "rejected a valid template:\n{yaml}\n{e}");
                // Every issue of these layouts can be placed, on a line
                // that holds what it is about.
                for issue in &e.issues {
                    let line = issue.line.ok_or_else(|| TestCaseError::fail(format!("no line for {}", issue.message)))?;
                    let held = yaml.lines().nth(line - 1).unwrap_or_default();
                    let about = issue.message.rsplit_once("depends on unknown step \"").map(|(_, rest)| rest.split('"').next().unwrap_or_default());
                    if let Some(missing) = about {
                        prop_assert!(held.contains(missing), "line {} is {:?} for {}", line, held, issue.message);
                    } else if issue.message.contains("no step is a root") {
                        prop_assert_eq!(held, "steps:");
                    } else {
                        prop_assert!(issue.message.contains("form a cycle"), "unexpected issue {}", issue.message);
                        prop_assert!(held.contains("step_"), "line {} is {:?} for {}", line, held, issue.message);
                    }
                }
            }
        }
    }
}

// The registry: several versions at once, the highest by default.

fn version(v: &str) -> TaskTemplate {
    TaskTemplate::from_yaml(
        &format!("user_registration-{v}.yaml"),
        &SEED.replace("version: 1.0.0", &format!("version: {v}")),
    )
    .unwrap()
}

fn registry() -> TemplateRegistry {
    let mut registry = TemplateRegistry::new();
    for v in ["1.2.0", "0.9.0", "1.10.0"] {
        assert!(registry.insert(version(v)).is_none());
    }
    registry
}

#[test]
fn registry_picks_the_highest_version_when_none_is_asked_for() {
    let registry = registry();
    // Semver order, not text order: 1.10.0 > 1.2.0.
    let t = registry.get("microservices", "user_registration", None).unwrap();
    assert_eq!(t.key(), "microservices/user_registration@1.10.0");
    let all: Vec<String> = registry.iter().map(|t| t.key()).collect();
    assert_eq!(
        all,
        [
            "microservices/user_registration@0.9.0",
            "microservices/user_registration@1.2.0",
            "microservices/user_registration@1.10.0"
        ]
    );
}

#[test]
fn registry_serves_a_pinned_version() {
    let registry = registry();
    let t = registry
        .get("microservices", "user_registration", Some("1.2.0"))
        .unwrap();
    assert_eq!(t.version, semver::Version::new(1, 2, 0));
}

#[test]
fn registry_replaces_a_reloaded_version() {
    let mut registry = registry();
    let replaced = registry.insert(version("1.2.0")).expect("1.2.0 was loaded");
    assert_eq!(replaced.key(), "microservices/user_registration@1.2.0");
    assert_eq!(registry.iter().count(), 3);
}

#[test]
fn registry_unknown_version() {
    let registry = registry();
    let err = registry
        .get("microservices", "user_registration", Some("2.0.0"))
        .unwrap_err();
    assert!(matches!(&err, LookupError::UnknownVersion { version, .. } if version == "2.0.0"));
    assert_eq!(
        err.to_string(),
        "template microservices/user_registration has no version 2.0.0; ask for one of the loaded versions (0.9.0, 1.2.0, 1.10.0), or for no version to get the highest"
    );
    // A version that is not semver matches nothing, and says so the same way.
    let err = registry
        .get("microservices", "user_registration", Some("1.2"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("has no version 1.2; ask for one of the loaded versions (0.9.0, 1.2.0, 1.10.0)"),
        "{err}"
    );
}

#[test]
fn registry_unknown_template_suggests_the_closest() {
    let mut registry = registry();
    let err = registry
        .get("microservices", "user_registraton", None)
        .unwrap_err();
    assert!(matches!(err, LookupError::UnknownTemplate { .. }));
    let shown = err.to_string();
    assert_eq!(
        shown,
        "no template microservices/user_registraton is loaded (did you mean microservices/user_registration?)"
    );
    // The coordinator's rejection carries the same words.
    let rejected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages/task_rejected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rejected["reason"], shown);

    let err = registry.get("payments", "process_refund", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no template payments/process_refund is loaded; ask for one of the loaded templates: microservices/user_registration"
    );

    let mut other = TaskTemplate::from_yaml(
        "refund.yaml",
        &SEED.replace("namespace_name: microservices", "namespace_name: payments"),
    )
    .unwrap();
    other.name = "process_refund".to_owned();
    registry.insert(other);
    assert_eq!(registry.namespaces(), ["microservices", "payments"]);
}

#[test]
fn an_empty_registry_says_so() {
    let err = TemplateRegistry::new()
        .get("microservices", "user_registration", None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no template microservices/user_registration is loaded; no templates are loaded"
    );
}

// results_from: the ancestors whose results a step's message carries.

#[test]
fn results_from_carries_only_the_named_ancestors_and_defaults_to_all() {
    let with = SEED.replace(
        "    dependencies:\n      - setup_billing_profile\n      - initialize_preferences",
        "    dependencies:\n      - setup_billing_profile\n      - initialize_preferences\n    results_from: [setup_billing_profile]",
    );
    assert_ne!(with, SEED, "the seed's join was not found to add results_from to");
    let template = TaskTemplate::from_yaml("with.yaml", &with).unwrap();
    let join = template.step_index("send_welcome_sequence").unwrap();
    let billing = template.step_index("setup_billing_profile").unwrap();
    assert_eq!(template.carried(join), [billing]);
    assert_eq!(
        template.steps[join].results_from.as_deref(),
        Some(&["setup_billing_profile".to_owned()][..])
    );
    // Without it, every ancestor's result is carried, as in the seed.
    let seed = TaskTemplate::from_yaml("seed.yaml", SEED).unwrap();
    assert_eq!(seed.carried(join), seed.dag.ancestors(join));
    assert_eq!(seed.carried(join).len(), 3);
}

#[test]
fn results_from_an_unknown_step_suggests_the_ancestor_meant() {
    assert_single(
        "results_from_unknown.yaml",
        &Expect {
            line: 19,
            at: "results_from:",
            says: &[
                LABEL,
                r#"step "send_welcome_sequence" takes results_from unknown step "setup_biling_profile""#,
                r#"(did you mean "setup_billing_profile"?)"#,
            ],
        },
    );
}

#[test]
fn results_from_a_step_it_does_not_depend_on_names_its_ancestors() {
    assert_single(
        "results_from_not_ancestor.yaml",
        &Expect {
            line: 19,
            at: "results_from:",
            says: &[
                LABEL,
                r#"step "initialize_preferences" takes results_from "setup_billing_profile", which it does not depend on"#,
                r#"name only steps it depends on, directly or not: "create_user_account""#,
            ],
        },
    );
}

#[test]
fn a_callable_too_long_to_route_by_is_refused() {
    let long = format!("Billing::{}", "Handler".repeat(40));
    let text = SEED.replace(
        "callable: Microservices::StepHandlers::SetupBillingProfileHandler",
        &format!("callable: {long}"),
    );
    assert_ne!(text, SEED);
    let err = rejected("long.yaml", &text);
    assert_style(&err);
    assert_eq!(err.issues.len(), 1, "{err}");
    let message = &err.issues[0].message;
    for phrase in [
        "step \"setup_billing_profile\" has a handler.callable of 289 bytes",
        "AMQP allows 255 bytes",
        "shorten it to 241 bytes or fewer",
    ] {
        assert!(message.contains(phrase), "{phrase:?} not in {message}");
    }
}
