//! The providers a facade build lists are exactly its enabled features.
//!
//! Run it on a one-provider build too:
//! `cargo test -p llmux --no-default-features --features openai-compat --test features`.

#[test]
fn registry_matches_enabled_features() {
    // every feature of this crate but `default` is a provider (see build.rs)
    let mut enabled: Vec<&str> = env!("LLMUX_FEATURES")
        .split(',')
        .filter(|f| !f.is_empty())
        .collect();
    enabled.sort_unstable();
    let registered: Vec<&str> = llmux::core::registrations()
        .expect("no duplicate names")
        .iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(registered, enabled);
    let client = llmux::Client::builder()
        .ignore_env()
        .build()
        .expect("client");
    let listed: Vec<String> = client
        .providers()
        .into_iter()
        .map(|p| p.info.name)
        .collect();
    assert_eq!(listed, enabled);
}

#[test]
fn providers_are_found_by_g4f_name() {
    let client = llmux::Client::builder()
        .ignore_env()
        .build()
        .expect("client");
    for p in client.providers() {
        if !p.info.g4f_name.is_empty() {
            let found = client
                .provider(&p.info.g4f_name.to_uppercase())
                .expect("by g4f name");
            assert_eq!(found.info().name, p.info.name);
        }
    }
}
