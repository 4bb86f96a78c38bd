//! The workspace end-to-end tests, one binary: a module per subject (see the crate docs of
//! `llmux_e2e` for the reliability suite). `cargo test -p llmux-e2e fault_matrix::` runs one.

mod fallback;
mod fault_matrix;
mod gateway_abuse;
mod gateway_matrix;
mod gateway_soak;
mod health;
mod openai_compat;
mod tools;
mod upstreams;
