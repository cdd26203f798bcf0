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
