//! The harness itself: the `selftest` target fails in every way the runner must catch.

use std::process::Command;

#[test]
fn panics_hangs_and_crashes_are_caught_and_saved() {
    let out_dir = std::env::temp_dir().join(format!("llmux-fuzz-selftest-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_llmux-fuzz"))
        .args([
            "selftest",
            "--seconds",
            "4",
            "--timeout-ms",
            "300",
            "--memory-mb",
            "1024",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .expect("llmux-fuzz runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "failures give a non-zero exit code"
    );
    for kind in ["Panic", "Hang", "Crash"] {
        assert!(
            stdout.contains(&format!("selftest: {kind}")),
            "no {kind} reported:\n{stdout}\n{stderr}"
        );
    }
    assert!(stdout.contains("selftest panic"), "{stdout}");
    assert!(stdout.contains("| `selftest` |"), "{stdout}");
    let saved = std::fs::read_dir(&out_dir).map(|d| d.count()).unwrap_or(0);
    assert!(saved >= 3, "{saved} inputs saved");
    let _ = std::fs::remove_dir_all(&out_dir);
}
