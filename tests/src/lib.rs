//! Shared helpers of the workspace-level end-to-end tests.
//!
//! The tests are one binary (`tests/e2e/main.rs`, one module per subject). Tests that measure
//! the whole process (open fds, memory) run [`alone`]; every other test that starts servers
//! holds a [`shared`] guard.
//!
//! The reliability suite (all loopback, all bounded in count and time):
//!
//! | test module | what |
//! |---|---|
//! | `fault_matrix` | every provider fake × protocol step × fault ([`matrix`]) through the facade, target named explicitly (its typed error) and routed with a fallback (fallback only before content); no task, connection or fd left; no secret in any log line, error or `Debug` output ([`capture`]) |
//! | `gateway_matrix` | the same cells through the gateway over HTTP: statuses and OpenAI error bodies, SSE error event + `[DONE]` after output; the gateway key never reaches a fake |
//! | `gateway_soak` | 2,000 mixed requests, random upstream faults and client disconnects; memory, upstream connections, tasks and fds afterwards |
//! | `gateway_abuse` | slowloris, invalid JSON and wrong types at every nesting level, unknown fields, oversized chunked bodies |
//!
//! One runner drives every fault over every provider: [`runner::arm`] starts a cell's fakes
//! with its fault injected, [`runner::run_matrix_test`] runs the whole matrix through the facade
//! or the gateway and checks that nothing is left behind.
//!
//! Debugging: `LLMUX_MATRIX_ONLY=<substring of target/step/fault>` runs matching cells only,
//! `LLMUX_MATRIX_VERBOSE=1` prints every facade run (with `--nocapture`),
//! `LLMUX_SOAK_SEED=<n>` replays a soak run.

pub mod capture;
pub mod gateway;
pub mod matrix;
pub mod runner;

use std::time::Duration;

use llmux::Timeouts;
pub use llmux_testkit::chat::{drain, providers_of, text_of};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Held shared by ordinary tests and exclusively by tests that measure the whole process.
static PROCESS: RwLock<()> = RwLock::const_new(());

/// Waits until no other test of the binary runs and keeps it so while the guard lives: for
/// tests that count the process's open fds, tasks or memory.
pub async fn alone() -> RwLockWriteGuard<'static, ()> {
    PROCESS.write().await
}

/// Runs beside other ordinary tests, never beside one that runs [`alone`].
pub async fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESS.read().await
}

/// Short timeouts so failure tests end quickly.
pub fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(2),
        idle: Duration::from_millis(500),
        total: Duration::from_secs(5),
    }
}
