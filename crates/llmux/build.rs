//! Records the enabled provider features (`LLMUX_FEATURES`, comma-separated), so the
//! registry test needs no hand-kept list of providers: a feature named like a provider enables
//! exactly that provider.

fn main() {
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_owned))
        .filter(|f| f != "DEFAULT")
        .map(|f| f.to_ascii_lowercase().replace('_', "-"))
        .collect();
    features.sort();
    println!("cargo:rustc-env=LLMUX_FEATURES={}", features.join(","));
    println!("cargo:rerun-if-changed=build.rs");
}
