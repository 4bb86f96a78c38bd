//! The `llmux` binary: see the [`llmux_cli`] crate.

fn main() -> std::process::ExitCode {
    llmux_cli::main()
}
