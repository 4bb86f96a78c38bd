//! Fallback across two providers: free before the first content chunk, never after it.

use llmux::{ChatRequest, Client, Error, ProviderConfig};
use llmux_e2e::{drain, providers_of, short_timeouts, text_of};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault, closed_port};

async fn two() -> (FakeServer, FakeServer, Client) {
    let alpha = FakeOpenAi::new()
        .models(["shared-model"])
        .reply("alpha answers here")
        .chunks(3)
        .start()
        .await;
    let beta = FakeOpenAi::new()
        .models(["shared-model"])
        .reply("beta answers here")
        .chunks(3)
        .start()
        .await;
    let client = Client::builder()
        .ignore_env()
        .registrations(llmux::core::registrations().expect("registry"))
        .timeouts(short_timeouts())
        .max_retries(0)
        .instance(
            "alpha",
            "openai-compat",
            ProviderConfig::default().with_base_url(alpha.url("/v1")),
        )
        .instance(
            "beta",
            "openai-compat",
            ProviderConfig::default().with_base_url(beta.url("/v1")),
        )
        .priority(["alpha", "beta"])
        .build()
        .expect("client");
    (alpha, beta, client)
}

#[tokio::test]
async fn first_provider_answers_when_healthy() {
    let _shared = llmux_e2e::shared().await;
    let (_alpha, beta, client) = two().await;
    let (chunks, err) = drain(client.chat(ChatRequest::user("shared-model", "hi"))).await;
    assert!(err.is_none());
    assert_eq!(providers_of(&chunks), ["alpha"]);
    assert_eq!(text_of(&chunks), "alpha answers here");
    assert_eq!(beta.requests_to("/v1/chat/completions").len(), 0);
}

#[tokio::test]
async fn falls_back_before_first_content() {
    let _shared = llmux_e2e::shared().await;
    for fault in [
        Fault::status(500),
        Fault::CloudflareChallenge,
        Fault::ResetBeforeHeaders,
        Fault::StallAfterHeaders,
        Fault::Malformed("data: {oops\n\n".into()),
    ] {
        let (alpha, _beta, client) = two().await;
        alpha.inject("/v1/chat/completions", fault.clone());
        let (chunks, err) = drain(client.chat(ChatRequest::user("shared-model", "hi"))).await;
        assert!(err.is_none(), "{fault:?}: {err:?}");
        assert_eq!(providers_of(&chunks), ["alpha", "beta"], "{fault:?}");
        assert_eq!(
            text_of(&chunks),
            "beta answers here",
            "{fault:?}: no alpha text leaked"
        );
    }
}

#[tokio::test]
async fn never_falls_back_after_first_content() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta, client) = two().await;
    alpha.inject("/v1/chat/completions", Fault::DisconnectAfter { chunks: 3 });
    let (chunks, err) = drain(client.chat(ChatRequest::user("shared-model", "hi"))).await;
    let err = err.expect("the mid-stream failure surfaces");
    assert!(
        matches!(err, Error::Connect { .. } | Error::Protocol { .. }),
        "{err}"
    );
    assert_eq!(providers_of(&chunks), ["alpha"]);
    let text = text_of(&chunks);
    assert!(
        !text.is_empty() && "alpha answers here".starts_with(&text),
        "{text:?}"
    );
    assert_eq!(
        beta.requests_to("/v1/chat/completions").len(),
        0,
        "no duplicate answer from beta"
    );
}

#[tokio::test]
async fn all_failed_lists_every_attempt() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta, client) = two().await;
    alpha.inject("/v1/chat/completions", Fault::status(502));
    beta.inject("/v1/chat/completions", Fault::rate_limited("120"));
    let err = client
        .complete(ChatRequest::user("shared-model", "hi"))
        .await
        .expect_err("both fail");
    match &err {
        Error::AllFailed { attempts } => {
            let names: Vec<&str> = attempts.iter().map(|a| a.provider.as_str()).collect();
            assert_eq!(names, ["alpha", "beta"]);
            assert!(matches!(*attempts[1].error, Error::RateLimited { .. }));
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("alpha") && msg.contains("beta") && msg.contains("502"),
        "{msg}"
    );
    assert_eq!(err.retry_after().map(|d| d.as_secs()), Some(120));
}

#[tokio::test]
async fn retries_connection_failures_then_falls_back() {
    let _shared = llmux_e2e::shared().await;
    let beta = FakeOpenAi::new().models(["m"]).reply("beta").start().await;
    let client = Client::builder()
        .ignore_env()
        .timeouts(short_timeouts())
        .max_retries(1)
        .instance(
            "alpha",
            "openai-compat",
            ProviderConfig::default()
                .with_base_url(format!("http://127.0.0.1:{}/v1", closed_port())),
        )
        .instance(
            "beta",
            "openai-compat",
            ProviderConfig::default().with_base_url(beta.url("/v1")),
        )
        .priority(["alpha", "beta"])
        .build()
        .expect("client");
    let resp = client
        .complete(ChatRequest::user("beta:m", "hi"))
        .await
        .expect("beta");
    assert_eq!(resp.text, "beta");
    // alpha is down: routing by model falls back to beta after alpha's discovery fails
    let resp = client
        .complete(ChatRequest::user("m", "hi"))
        .await
        .expect("routed to beta");
    assert_eq!(resp.provider, "beta");
}

#[tokio::test]
async fn request_credentials_only_reach_named_providers() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, _beta, client) = two().await;
    client
        .complete(ChatRequest::user("shared-model", "hi").with_api_key("sk-user-secret"))
        .await
        .expect("routed");
    assert_eq!(
        alpha.requests_to("/v1/chat/completions")[0].bearer_token(),
        None
    );
    client
        .complete(
            ChatRequest::user("shared-model", "hi")
                .with_provider("alpha")
                .with_api_key("sk-user-secret"),
        )
        .await
        .expect("named");
    assert_eq!(
        alpha.requests_to("/v1/chat/completions")[1].bearer_token(),
        Some("sk-user-secret")
    );
}

#[tokio::test]
async fn unknown_provider_suggests_names() {
    let _shared = llmux_e2e::shared().await;
    let (_a, _b, client) = two().await;
    let err = client
        .complete(ChatRequest::user("x", "hi").with_provider("alpah"))
        .await
        .expect_err("unknown");
    assert!(
        matches!(&err, Error::ProviderNotFound { suggestions, .. } if suggestions.contains(&"alpha".to_owned())),
        "{err}"
    );
}

/// A provider whose session expired: a login prompt, then `MissingAuth`.
struct NeedsLogin {
    info: llmux::ProviderInfo,
}

impl llmux::Provider for NeedsLogin {
    fn info(&self) -> &llmux::ProviderInfo {
        &self.info
    }

    fn chat(&self, _req: ChatRequest, _ctx: llmux::core::Context) -> llmux::ChatStream {
        let url = "http://127.0.0.1:9/login".to_owned();
        Box::pin(futures_util::stream::iter([
            Ok(llmux::Chunk::LoginRequired {
                label: "Needs Login".into(),
                url: url.clone(),
            }),
            Err(Error::MissingAuth {
                provider: "needs-login".into(),
                help: "log in".into(),
                login_url: Some(url),
            }),
        ]))
    }
}

fn needs_login() -> std::sync::Arc<NeedsLogin> {
    std::sync::Arc::new(NeedsLogin {
        info: llmux::ProviderInfo {
            name: "needs-login".into(),
            models: vec!["shared-model".into()],
            working: true,
            ..llmux::ProviderInfo::default()
        },
    })
}

fn logins(chunks: &[llmux::Chunk]) -> usize {
    chunks
        .iter()
        .filter(|c| matches!(c, llmux::Chunk::LoginRequired { .. }))
        .count()
}

/// Regression (fault matrix, through the gateway): the login prompt of a provider that then
/// failed reached the caller, followed by the fallback's answer — one answer made of two
/// providers' output.
#[tokio::test]
async fn a_failed_providers_login_prompt_is_not_mixed_into_the_fallback_answer() {
    let _shared = llmux_e2e::shared().await;
    let beta = FakeOpenAi::new()
        .models(["shared-model"])
        .reply("beta answers here")
        .start()
        .await;
    let client = Client::builder()
        .ignore_env()
        .registrations(llmux::core::registrations().expect("registry"))
        .timeouts(short_timeouts())
        .with_provider(needs_login())
        .instance("beta", "openai-compat", {
            let mut cfg = ProviderConfig::default().with_base_url(beta.url("/v1"));
            cfg.models = vec!["shared-model".into()];
            cfg
        })
        .priority(["needs-login", "beta"])
        .build()
        .expect("client");
    let (chunks, err) = drain(client.chat(ChatRequest::user("shared-model", "hi"))).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(providers_of(&chunks), ["needs-login", "beta"]);
    assert_eq!(logins(&chunks), 0, "{chunks:?}");
    assert_eq!(text_of(&chunks), "beta answers here");

    // every provider failed: the prompt is shown, right before the error
    beta.inject_times("/v1/chat/completions", Fault::status(500), 5);
    let (chunks, err) = drain(client.chat(ChatRequest::user("shared-model", "hi"))).await;
    assert!(matches!(err, Some(Error::AllFailed { .. })), "{err:?}");
    assert_eq!(logins(&chunks), 1);
    assert!(
        matches!(chunks.last(), Some(llmux::Chunk::LoginRequired { .. })),
        "{chunks:?}"
    );

    // named explicitly: the prompt, then the error, as the provider sent them
    let (chunks, err) =
        drain(client.chat(ChatRequest::user("shared-model", "hi").with_provider("needs-login")))
            .await;
    assert!(matches!(err, Some(Error::MissingAuth { .. })), "{err:?}");
    assert_eq!(logins(&chunks), 1);
}

/// The cookie source hook: asked per attempt, its error fails that attempt only (routing falls
/// back), and cookies given with a request for a named provider are left alone.
#[tokio::test]
async fn cookie_source_is_asked_per_provider_and_its_error_falls_back() {
    let _shared = llmux_e2e::shared().await;
    use std::sync::{Arc, Mutex};
    let alpha = FakeOpenAi::new()
        .models(["shared-model"])
        .reply("alpha")
        .start()
        .await;
    let beta = FakeOpenAi::new()
        .models(["shared-model"])
        .reply("beta")
        .start()
        .await;
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&asked);
    let source: llmux::CookieSource = Arc::new(move |info| {
        log.lock().expect("lock").push(info.name.clone());
        if info.name == "alpha" {
            Err(Error::MissingAuth {
                provider: info.name.clone(),
                help: "cookie `s` in a.txt expired".into(),
                login_url: None,
            })
        } else {
            Ok(Some(llmux::Cookies::parse("s=1")))
        }
    });
    let client = Client::builder()
        .ignore_env()
        .registrations(llmux::core::registrations().expect("registry"))
        .timeouts(short_timeouts())
        .instance(
            "alpha",
            "openai-compat",
            ProviderConfig::default().with_base_url(alpha.url("/v1")),
        )
        .instance(
            "beta",
            "openai-compat",
            ProviderConfig::default().with_base_url(beta.url("/v1")),
        )
        .priority(["alpha", "beta"])
        .cookie_source(source)
        .build()
        .expect("client");
    let (chunks, err) = drain(client.chat(ChatRequest::user("shared-model", "hi"))).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(providers_of(&chunks), ["beta"]);
    assert_eq!(text_of(&chunks), "beta");
    assert_eq!(alpha.requests_to("/v1/chat/completions").len(), 0);
    assert_eq!(*asked.lock().expect("lock"), ["alpha", "beta"]);

    // alone, the hook's error is the answer
    let (_, err) =
        drain(client.chat(ChatRequest::user("shared-model", "hi").with_provider("alpha"))).await;
    assert!(
        matches!(err, Some(Error::MissingAuth { ref help, .. }) if help.contains("a.txt")),
        "{err:?}"
    );

    // a request's own cookies for the named provider: the hook is not asked
    asked.lock().expect("lock").clear();
    let req = ChatRequest::user("shared-model", "hi")
        .with_provider("alpha")
        .with_cookies(llmux::Cookies::parse("own=1"));
    let (_, err) = drain(client.chat(req)).await;
    assert!(err.is_none(), "{err:?}");
    assert!(asked.lock().expect("lock").is_empty());
}
