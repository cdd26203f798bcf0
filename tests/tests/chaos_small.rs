//! The chaos suite, small: the same faults as `deploy/dev chaos`, with
//! fewer tasks and shorter pauses. Nothing may be lost, every join must fire
//! once, and the work of a frozen coordinator or worker must be taken over
//! while it is frozen, within the bound.
//!
//! Two of the faults restart RabbitMQ and Redis with `deploy/dev restart`,
//! which only works on servers that `deploy/dev` started from this
//! checkout. `deploy/dev test` starts them when nothing else listens on
//! their ports, as in CI; against other servers this test fails rather
//! than pass without those faults.

use std::path::PathBuf;
use std::time::Duration;

use tasker_e2e::chaos::{self, ChaosConfig, Fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_under_kills_pauses_restarts_and_duplicates() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dev_script = root.join("deploy/dev");
    if let Some(why) = chaos::restart_blocker(&dev_script) {
        panic!(
            "{why}. This test restarts both servers: run it with `deploy/dev test`, which starts \
             them from this checkout when nothing else listens on their ports (as in CI), or \
             point TASKER_STATE_DIR at the state directory of the deploy/dev that started them"
        );
    }
    let log_dir = root.join("target/chaos/test");
    std::fs::create_dir_all(&log_dir).unwrap();
    let report = chaos::run(ChaosConfig {
        max_tasks: 20_000,
        in_flight: 200,
        fault_interval: Duration::from_secs(1),
        finish_timeout: Duration::from_secs(90),
        faults: Fault::ALL.to_vec(),
        // Longer than the ~13 s RabbitMQ takes to close a frozen process's
        // connection, so that its work is taken over while it is frozen.
        process_pause: Duration::from_secs(25),
        server_pause: Duration::from_secs(5),
        node_binary: PathBuf::from(env!("CARGO_BIN_EXE_chaos-node")),
        python: tasker_e2e::process::python(),
        dev_script,
        log_dir,
    })
    .await
    .unwrap();
    eprintln!("{}", report.table());
    assert_eq!(report.tasks_lost, 0, "lost tasks: {:?}", report.lost_task_ids);
    assert_eq!(report.joins_not_fired_once, 0);
    assert_eq!(report.results_changed, 0);
    assert_eq!(report.tasks_failed, 0);
    assert_eq!(report.child_tasks_wrong, 0);
    // Every fault was injected, and with tasks in flight: one injected
    // after submitting stopped (at max_tasks) would test nothing.
    assert_eq!(
        report.faults.iter().map(|f| f.fault).collect::<Vec<_>>(),
        Fault::ALL,
        "every fault is injected"
    );
    for f in &report.faults {
        assert!(
            f.recovered,
            "no {} tasks finished within {} s of {:?}: either it never recovered, or too few \
             tasks were still in flight to exercise it",
            chaos::RECOVERY_TASKS,
            chaos::RECOVERY_LIMIT.as_secs(),
            f.fault
        );
    }
    for f in &report.faults {
        if let Some(in_time) = f.taken_over_in_time() {
            assert!(
                in_time,
                "{:?}: of {} tasks in flight at the freeze, {:?} finished while it was frozen, the last {:?} s \
                 after it; the bound is {} s",
                f.fault,
                f.in_flight,
                f.done_while_frozen,
                f.in_flight_done_seconds,
                chaos::TAKEOVER_BOUND.as_secs()
            );
        }
        assert_ne!(
            f.resumed,
            Some(false),
            "{:?}: the process did not run on after SIGCONT",
            f.fault
        );
    }
    assert!(
        report.tasks_submitted >= 200,
        "the run must keep 200 tasks in flight"
    );
}
