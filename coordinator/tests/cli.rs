//! The `tasker` command line, where no server is needed.

use std::process::{Command, Stdio};

fn tasker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tasker"))
}

fn templates_dir() -> String {
    format!("{}/../templates", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // `tasker templates list | head -0`: the pipe's reading end is closed
    // before the command writes a line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = tasker()
        .args(["templates", "list", "--templates", &templates_dir()])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn the_templates_are_listed() {
    let output = tasker()
        .args(["templates", "list", "--templates", &templates_dir()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("user_registration"), "{stdout}");
}

#[test]
fn every_coordinator_setting_has_a_flag_and_an_environment_variable() {
    let output = tasker().args(["coordinator", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, variable) in [
        ("--amqp-url", "TASKER_AMQP_URL"),
        ("--redis-url", "TASKER_REDIS_URL"),
        ("--templates", "TASKER_TEMPLATES"),
        ("--amqp-heartbeat", "TASKER_AMQP_HEARTBEAT"),
        ("--prefetch", "TASKER_PREFETCH"),
        ("--max-message-bytes", "TASKER_MAX_MESSAGE_BYTES"),
        ("--retention", "TASKER_RETENTION"),
        ("--retry-poll", "TASKER_RETRY_POLL"),
        ("--claim-hold", "TASKER_CLAIM_HOLD"),
        ("--default-lease", "TASKER_DEFAULT_LEASE"),
        ("--lease-margin", "TASKER_LEASE_MARGIN"),
        ("--max-redeliveries", "TASKER_MAX_REDELIVERIES"),
        ("--unrouted-grace", "TASKER_UNROUTED_GRACE"),
        ("--name", "TASKER_COORDINATOR_NAME"),
        ("--health-addr", "TASKER_HEALTH_ADDR"),
    ] {
        let at = help
            .find(&format!("{flag} <"))
            .unwrap_or_else(|| panic!("no {flag} in\n{help}"));
        // The flag's own entry ends where the next flag's begins.
        let rest = &help[at + 2..];
        let next_flag = ["\n  -", "\n      --"]
            .iter()
            .filter_map(|start| rest.find(start))
            .min()
            .map_or(help.len(), |n| at + 2 + n);
        assert!(
            help[at..next_flag].contains(&format!("[env: {variable}")),
            "{flag} has no environment variable {variable}:\n{}",
            &help[at..next_flag]
        );
    }
}

#[test]
fn a_bad_duration_says_how_to_write_one() {
    let output = tasker()
        .args(["coordinator", "--retention", "a week"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("250ms, 30s, 10m, 2h or 7d"), "{stderr}");
}
