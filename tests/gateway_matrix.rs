//! The fault-injection matrix through the gateway over HTTP: each cell behind its own gateway
//! (with a gateway key), the target named in the body or routed by model with a fallback.
//! Failures before any output get real statuses and OpenAI error bodies; failures after output
//! has begun are an SSE error event followed by `[DONE]`. No fake ever sees the gateway key,
//! and nothing the gateway logged or answered shows a secret.

use std::time::{Duration, Instant};

use llmux_e2e::capture::Capture;
use llmux_e2e::matrix::{self, secrets};
use llmux_e2e::runner::{self, Via, open_fds, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_fault_matrix_and_secrets() {
    let capture = Capture::global();
    let cells = matrix::cells();
    let fds_before = open_fds();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    let started = Instant::now();
    let (failures, slowest) = runner::run_matrix(Via::Gateway, &cells, 32, &capture).await;
    eprintln!(
        "gateway matrix: {} cells × 2 modes in {:?} (slowest answer {slowest:?})",
        cells.len(),
        started.elapsed()
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

    let leaks = capture.leaks(secrets::ALL);
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    assert!(
        capture.log_lines() > 100,
        "the gateway logs (the search is not vacuous)"
    );
}
