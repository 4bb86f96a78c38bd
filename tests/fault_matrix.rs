//! The fault-injection matrix through the facade: every provider fake × every protocol step ×
//! every fault, each cell run with the target named explicitly (its typed error surfaces) and
//! routed by model with a healthy fallback after it (fallback only before the first content).
//!
//! One test, so that the secret search sees everything the matrix logged and produced.

use std::time::{Duration, Instant};

use llmux_e2e::capture::Capture;
use llmux_e2e::matrix::{self, secrets};
use llmux_e2e::runner::{self, open_fds, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_fault_matrix_and_secrets() {
    let capture = Capture::global();
    tracing::info!("fault matrix starting");
    let cells = matrix::cells();
    let skipped = matrix::not_applicable();
    if std::env::var_os("LLMUX_MATRIX_ONLY").is_none() {
        // every (target, step, fault) is a cell or listed as not applicable, with a reason
        let targets = matrix::targets();
        let steps: usize = targets.iter().map(|t| t.steps.len()).sum();
        assert_eq!(
            cells.len() + skipped.len(),
            steps * matrix::STEP_FAULTS.len() + targets.len(),
            "{skipped:?}"
        );
    }
    let fds_before = open_fds();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    let started = Instant::now();
    let (failures, slowest) = runner::run_matrix(runner::Via::Facade, &cells, 32, &capture).await;
    let took = started.elapsed();
    eprintln!(
        "facade matrix: {} cells × 2 modes in {took:?} (slowest call {slowest:?}); {} cells not applicable",
        cells.len(),
        skipped.len()
    );
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|f| format!("{} [{:?}]: {}", f.cell, f.mode, f.message))
            .collect();
        panic!(
            "{} of {} runs failed:\n{}",
            failures.len(),
            cells.len() * 2,
            list.join("\n")
        );
    }

    // nothing left behind: every task ended, every socket closed
    let tasks = settle(tasks_before, Duration::from_secs(5), || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    })
    .await;
    assert!(
        tasks <= tasks_before,
        "{tasks} tasks alive after the matrix (before: {tasks_before})"
    );
    let fds = settle(fds_before + 4, Duration::from_secs(5), open_fds).await;
    assert!(
        fds <= fds_before + 4,
        "{fds} fds open after the matrix (before: {fds_before})"
    );

    // no secret in any log line, error message or Debug output of the whole matrix
    let leaks = capture.leaks(secrets::ALL);
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    assert!(
        capture.log_lines() > 100,
        "the matrix logs (the search is not vacuous)"
    );
    assert!(
        capture.texts() > cells.len(),
        "errors and chunks were recorded"
    );
}

/// The capture itself finds a secret that is logged, in an error message or in `Debug`.
#[test]
fn the_secret_search_finds_planted_secrets() {
    let capture = llmux_e2e::capture::Capture::default();
    capture.record(format!("{:?}", llmux::Secret::new(secrets::OPENAI_KEY)));
    assert!(
        capture.leaks(secrets::ALL).is_empty(),
        "Secret's Debug is redacted"
    );
    capture.record(format!("oops {}", secrets::HF_TOKEN));
    assert_eq!(capture.leaks(secrets::ALL).len(), 1);
}
