//! The fault-injection matrix through the facade: every provider fake × every protocol step ×
//! every fault, each cell run with the target named explicitly (its typed error surfaces) and
//! routed by model with a healthy fallback after it (fallback only before the first content).
//!
//! One test, so that the secret search sees everything the matrix logged and produced.

use llmux_e2e::capture::Capture;
use llmux_e2e::matrix::{self, secrets};
use llmux_e2e::runner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_fault_matrix_and_secrets() {
    let _alone = llmux_e2e::alone().await;
    let (capture, _recording) = Capture::global();
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
    runner::run_matrix_test(runner::Via::Facade, &cells, &capture).await;
    assert!(
        capture.texts() > cells.len(),
        "errors and chunks were recorded"
    );
    eprintln!("facade matrix: {} cells not applicable", skipped.len());
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
