//! The `llmux` binary: see the [`llmux_cli`] crate.

/// mimalloc instead of the system allocator: the gateway allocates and frees a few hundred small
/// buffers per relayed request, and glibc's malloc and free were a fifth of its instructions;
/// with mimalloc the gateway runs 12 % fewer instructions per request (callgrind; see
/// `BENCHMARKS.md`). Built with `no_thp` (no transparent huge pages), which keeps the idle RSS
/// at the system allocator's level (13.6 instead of 22.8 MiB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    llmux_cli::main()
}
