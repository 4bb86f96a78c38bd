//! `huggingface-inference` end to end: facade → provider → fake Hub / Inference API / router.

use std::time::Duration;

use llmux::{
    ChatRequest, ChatStream, Chunk, Client, Error, FinishReason, Image, MediaData, Message,
    ProviderConfig, Timeouts, Usage,
};
use llmux_core::Context;
use llmux_core::http::{HttpClient, HttpConfig};
use llmux_provider_huggingface_inference::{NAME, save_images};
use llmux_testkit::hf_inference::{DEEPSEEK_EOS, FAKE_JPEG, FakeHfInference};
use llmux_testkit::{FakeServer, Fault};
use serde_json::{Value, json};

const QWEN: &str = "Qwen/Qwen2.5-72B-Instruct";
const QWEN_DATA: &str = "/api/models/Qwen/Qwen2.5-72B-Instruct";
const QWEN_INFERENCE: &str = "/models/Qwen/Qwen2.5-72B-Instruct";

fn timeouts(total: Duration) -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(3),
        idle: Duration::from_secs(2),
        total,
    }
}

/// Every origin (base, hub, router) on the fake.
fn config(server: &FakeServer) -> ProviderConfig {
    ProviderConfig::default()
        .with_base_url(server.url(""))
        .with_origin("hub", server.url(""))
        .with_origin("router", server.url(""))
}

fn client_with(cfg: ProviderConfig, total: Duration) -> Client {
    let regs = llmux_testkit::chat::registrations(&[NAME]);
    Client::builder()
        .ignore_env()
        .registrations(regs)
        .timeouts(timeouts(total))
        .provider(NAME, cfg)
        .build()
        .expect("client")
}

fn client(server: &FakeServer) -> Client {
    client_with(config(server), Duration::from_secs(10))
}

/// The stream's chunks but the `Provider` announcement, and the error that ended it.
async fn drain(stream: ChatStream) -> (Vec<Chunk>, Option<Error>) {
    let (mut chunks, error) = llmux_testkit::chat::drain(stream).await;
    chunks.retain(|c| !matches!(c, Chunk::Provider(_)));
    (chunks, error)
}

fn req(model: &str, messages: Vec<Message>) -> ChatRequest {
    ChatRequest::new(model, messages).with_provider(NAME)
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("Be brief."),
        Message::user("Hi"),
        Message::assistant("Hello!"),
        Message::user("2+2?"),
    ]
}

/// The JSON body of the only request to `path`.
fn only_body(server: &FakeServer, path: &str) -> Value {
    let sent = server.requests_to(path);
    assert_eq!(sent.len(), 1, "requests to {path}: {sent:?}");
    sent[0].json().expect("json body")
}

#[tokio::test]
async fn transcript_a_streams_a_chatml_model() {
    let server = FakeHfInference::new()
        .api_key("hf_xxx")
        .end_token(Some("<|im_end|>"))
        .start()
        .await;
    let client = client_with(
        config(&server).with_api_key("hf_xxx"),
        Duration::from_secs(10),
    );
    let (chunks, err) = drain(client.chat(req(QWEN, vec![Message::user("Hi")]))).await;
    assert!(err.is_none(), "{err:?}");
    // the usage comes from the `details` of TGI's last event (asked for with `details: true`;
    // the fake counts one prompt token per word: 4 here, and the end token is generated)
    assert_eq!(
        chunks,
        vec![
            Chunk::text("Hello"),
            Chunk::text("!"),
            Chunk::Usage(Usage::new(4, 3)),
            Chunk::Finish(FinishReason::Stop)
        ]
    );

    let data = server.requests_to(QWEN_DATA);
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].bearer_token(), Some("hf_xxx"));
    let post = server.requests_to(QWEN_INFERENCE);
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].bearer_token(), Some("hf_xxx"));
    assert_eq!(post[0].header("accept-encoding"), Some("gzip, deflate"));
    assert_eq!(post[0].header("content-type"), Some("application/json"));
    assert_eq!(
        post[0].json().expect("json"),
        json!({"inputs": "<|im_start|>user\nHi\n<|im_end|>\n<|im_start|>assistant\n",
               "parameters": {"return_full_text": false, "max_new_tokens": 1024, "temperature": null, "details": true},
               "stream": true})
    );
    // No discovery on a chat call.
    assert!(server.requests_to("/api/models").is_empty());
}

#[tokio::test]
async fn every_template_reaches_the_upstream() {
    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    let cases: Vec<(&str, String)> = vec![
        (
            "mistralai/Mistral-Nemo-Instruct-2407",
            "<s>[INST]Hi [/INST] Hello!</s>\n<s>[INST] 2+2? Be brief. [/INST]".into(),
        ),
        (
            "meta-llama/Llama-3.3-70B-Instruct",
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.\n<|eot_id|>\n<|start_header_id|>user<|end_header_id|>\n\nHi\n<|eot_id|>\n<|start_header_id|>assistant<|end_header_id|>\n\nHello!\n<|eot_id|>\n<|start_header_id|>user<|end_header_id|>\n\n2+2?\n<|eot_id|>\n<|start_header_id|>assistant<|end_header_id|>\n\n".into(),
        ),
        (
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            format!("<｜System｜>Be brief.{DEEPSEEK_EOS}<｜User｜>Hi{DEEPSEEK_EOS}<｜Assistant｜>Hello!{DEEPSEEK_EOS}<｜User｜>2+2?{DEEPSEEK_EOS}<｜Assistant｜>"),
        ),
        (
            "microsoft/Phi-3.5-mini-instruct",
            "<|system|>\nBe brief.<|endoftext|>\n<|user|>\nHi<|endoftext|>\n<|assistant|>\nHello!<|endoftext|>\n<|user|>\n2+2?<|endoftext|>\n<|assistant|>\n".into(),
        ),
        (
            "Qwen/Qwen2-VL-7B-Instruct",
            "<|im_start|>system\nBe brief.\n<|im_end|>\n<|im_start|>user\nHi\n<|im_end|>\n<|im_start|>assistant\nHello!\n<|im_end|>\n<|im_start|>user\n2+2?\n<|im_end|>\n<|im_start|>assistant\n".into(),
        ),
        (
            "someorg/end-model",
            "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: 2+2?\nAssistant:".into(),
        ),
        (
            "openai-community/gpt2",
            "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: 2+2?\nAssistant:".into(),
        ),
    ];
    for (model, want) in &cases {
        let (chunks, err) = drain(client.chat(req(model, conversation()))).await;
        assert!(err.is_none(), "{model}: {err:?}");
        assert_eq!(chunks.first(), Some(&Chunk::text("Hello")), "{model}");
        let body = only_body(&server, &format!("/models/{model}"));
        assert_eq!(body["inputs"].as_str(), Some(want.as_str()), "{model}");
    }
    // The gpt2 token rule.
    let body = only_body(&server, "/models/openai-community/gpt2");
    assert_eq!(body["parameters"]["max_new_tokens"], 512);
    let body = only_body(&server, "/models/someorg/end-model");
    assert_eq!(body["parameters"]["max_new_tokens"], 1024);
}

#[tokio::test]
async fn continue_mode_keeps_the_leading_space() {
    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    let r = req(
        "meta-llama/Llama-3.3-70B-Instruct",
        vec![
            Message::user("Write a poem"),
            Message::assistant("Roses are red"),
        ],
    )
    .with_extra("action", json!("continue"));
    let (chunks, err) = drain(client.chat(r)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks[0], Chunk::text(" Hello"));
    let body = only_body(&server, "/models/meta-llama/Llama-3.3-70B-Instruct");
    assert_eq!(
        body["inputs"],
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWrite a poem\n<|eot_id|>\n<|start_header_id|>assistant<|end_header_id|>\n\nRoses are red"
    );
}

#[tokio::test]
async fn truncation_rule_is_applied_before_sending() {
    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    let long = "x".repeat(5000);
    let messages = vec![
        Message::system("S"),
        Message::user(long.as_str()),
        Message::assistant("A"),
        Message::user("last"),
    ];
    let (_, err) = drain(client.chat(req(QWEN, messages))).await;
    assert!(err.is_none(), "{err:?}");
    let body = only_body(&server, QWEN_INFERENCE);
    assert_eq!(
        body["inputs"],
        "<|im_start|>system\nS\n<|im_end|>\n<|im_start|>user\nlast\n<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[tokio::test]
async fn parameters_and_finish_length() {
    let server = FakeHfInference::new().end_token(None).start().await;
    let client = client(&server);
    let r = req(QWEN, vec![Message::user("Hi")])
        .with_max_tokens(50)
        .with_temperature(0.25)
        .with_seed(42)
        .with_stop("###")
        .with_extra("extra_data", json!({"top_k": 5, "temperature": 0.5}));
    let (chunks, err) = drain(client.chat(r)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks.last(), Some(&Chunk::Finish(FinishReason::Length)));
    let body = only_body(&server, QWEN_INFERENCE);
    assert_eq!(
        body["parameters"],
        json!({"return_full_text": false, "max_new_tokens": 50, "temperature": 0.5,
               "details": true, "stop": ["###"], "top_k": 5, "seed": 42})
    );
}

/// Non-streaming answers cut by `max_tokens` report `length` (from TGI's `details`, which
/// llmux asks for), natural ends and stop sequences `stop`, and every answer its usage.
#[tokio::test]
async fn non_streaming_finish_reason_and_usage_come_from_details() {
    let server = FakeHfInference::new()
        .tokens([" one", " two", " three", " four"])
        .start()
        .await;
    let client = client(&server);
    let ask = |max: u32| {
        req(QWEN, vec![Message::user("count to four")])
            .with_stream(false)
            .with_max_tokens(max)
    };
    let cut = client.complete(ask(2)).await.expect("cut");
    assert_eq!(cut.text, "one two");
    assert_eq!(cut.finish_reason, Some(FinishReason::Length));
    // the prompt count is TGI's `x-prompt-tokens` header (`prefill` is empty unless asked):
    // the ChatML inputs of "count to four" are 6 whitespace-separated words, the fake's tokens
    let usage = |completion| Usage::new(6, completion);
    assert_eq!(cut.usage, Some(usage(2)));
    let whole = client.complete(ask(100)).await.expect("whole");
    assert_eq!(
        (whole.text.as_str(), whole.finish_reason),
        ("one two three four", Some(FinishReason::Stop))
    );
    assert_eq!(whole.usage, Some(usage(5)));
    let stopped = client
        .complete(ask(100).with_stop(" three"))
        .await
        .expect("stopped");
    assert_eq!(stopped.text, "one two three");
    assert_eq!(stopped.finish_reason, Some(FinishReason::Stop));
    for sent in server.requests_to(QWEN_INFERENCE) {
        assert_eq!(sent.json().expect("json")["parameters"]["details"], true);
    }
}

/// Streams: TGI's last event carries `details`; a stop sequence (no special token) is `stop`.
#[tokio::test]
async fn streamed_stop_sequence_is_a_stop() {
    let server = FakeHfInference::new()
        .tokens([" a", " b", " c"])
        .start()
        .await;
    let resp = client(&server)
        .complete(req(QWEN, vec![Message::user("Hi")]).with_stop(" b"))
        .await
        .expect("reply");
    assert_eq!(resp.text, "a b");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.usage.map(|u| u.completion_tokens), Some(2));
}

#[tokio::test]
async fn non_streaming_text_works() {
    let server = FakeHfInference::new()
        .tokens(["  Hello", " there!\n"])
        .start()
        .await;
    let client = client(&server);
    let resp = client
        .complete(req(QWEN, vec![Message::user("Hi")]).with_stream(false))
        .await
        .expect("completion");
    assert_eq!(resp.text, "Hello there!");
    assert_eq!(only_body(&server, QWEN_INFERENCE)["stream"], false);
}

#[tokio::test]
async fn stream_error_events_are_upstream_errors() {
    let server = FakeHfInference::new()
        .stream_error(0, "Request failed during generation: CUDA OOM")
        .start()
        .await;
    let (chunks, err) = drain(client(&server).chat(req(QWEN, vec![Message::user("Hi")]))).await;
    assert!(chunks.is_empty(), "{chunks:?}");
    match err {
        Some(Error::Upstream { provider, message }) => {
            assert_eq!(provider, NAME);
            assert_eq!(message, "Request failed during generation: CUDA OOM");
        }
        other => panic!("expected Upstream, got {other:?}"),
    }

    // After content the error still surfaces (no fallback after output).
    let server = FakeHfInference::new()
        .tokens(["a", "b", "c"])
        .stream_error(2, "boom")
        .start()
        .await;
    let (chunks, err) = drain(client(&server).chat(req(QWEN, vec![Message::user("Hi")]))).await;
    assert_eq!(chunks, vec![Chunk::text("a"), Chunk::text("b")]);
    assert!(matches!(err, Some(Error::Upstream { .. })), "{err:?}");
}

#[tokio::test]
async fn text_to_image_returns_bytes_that_can_be_saved() {
    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    let r = req(
        "stabilityai/stable-diffusion-3.5-large",
        vec![Message::user("a cat")],
    )
    .with_seed(7)
    .with_extra("aspect_ratio", json!("16:9"))
    .with_extra("extra_data", json!({"guidance_scale": 3.5}));
    let (chunks, err) = drain(client.chat(r)).await;
    assert!(err.is_none(), "{err:?}");
    let want = Image {
        data: MediaData::Bytes {
            mime: "image/jpeg".into(),
            data: FAKE_JPEG.to_vec().into(),
        },
        alt: "a cat".into(),
        needs_auth: false,
    };
    assert_eq!(chunks, vec![Chunk::Images(vec![want.clone()])]);
    assert_eq!(
        only_body(&server, "/models/stabilityai/stable-diffusion-3.5-large"),
        json!({"inputs": "a cat", "parameters": {"seed": 7, "width": 832, "height": 480, "guidance_scale": 3.5}})
    );

    let dir = std::env::temp_dir().join(format!("llmux-hf-test-{}", std::process::id()));
    let paths = save_images(&[want], &dir).await.expect("saved");
    assert_eq!(paths.len(), 1);
    let name = paths[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    assert!(name.ends_with(".jpeg") && name.contains("a_cat_"), "{name}");
    assert_eq!(std::fs::read(&paths[0]).expect("read"), FAKE_JPEG);
    let _ = std::fs::remove_dir_all(&dir);

    // Without a seed, a random one in [0, 2^32] is sent; the prompt option wins over messages.
    let r = req("x/y", vec![Message::user("ignored")]).with_prompt("a dog");
    let (chunks, err) = drain(client.chat(r)).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(&chunks[0], Chunk::Images(i) if i[0].alt == "a dog"));
    let body = only_body(&server, "/models/x/y");
    assert_eq!(body["inputs"], "a dog");
    assert!(
        body["parameters"]["seed"]
            .as_u64()
            .is_some_and(|s| s <= 1 << 32),
        "{body}"
    );
    assert!(body.get("stream").is_none());
}

#[tokio::test]
async fn transcript_b_flux_falls_through_the_together_404() {
    let server = FakeHfInference::new().api_key("hf_k").start().await;
    let client = client_with(
        config(&server).with_api_key("hf_k"),
        Duration::from_secs(10),
    );
    let r = req("flux-schnell", vec![Message::user("a cat")])
        .with_seed(7)
        .with_extra("aspect_ratio", json!("16:9"));
    let (chunks, err) = drain(client.chat(r)).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(&chunks[..], [Chunk::Images(i)] if i.len() == 1 && i[0].alt == "a cat"));
    let together = server.requests_to("/together/v1/images/generations");
    assert_eq!(together.len(), 1);
    assert_eq!(together[0].bearer_token(), Some("hf_k"));
    assert_eq!(
        together[0].json().expect("json"),
        json!({"response_format": "url", "prompt": "a cat", "model": "black-forest-labs/FLUX.1-schnell", "width": 832, "height": 480})
    );
    assert_eq!(
        server
            .requests_to("/api/models/black-forest-labs/FLUX.1-schnell")
            .len(),
        1
    );
    assert_eq!(
        only_body(&server, "/models/black-forest-labs/FLUX.1-schnell"),
        json!({"inputs": "a cat", "parameters": {"seed": 7, "width": 832, "height": 480}})
    );
    // Every request of the call carried the token.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.bearer_token() == Some("hf_k"))
    );
}

#[tokio::test]
async fn flux_together_success_returns_urls() {
    let server = FakeHfInference::new()
        .together_urls(["https://api.together.ai/imgproxy/abc.jpeg"])
        .start()
        .await;
    let client = client(&server);
    let (chunks, err) = drain(client.chat(req("flux", vec![Message::user("a cat")]))).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        chunks,
        vec![Chunk::Images(vec![Image {
            data: MediaData::Url("https://api.together.ai/imgproxy/abc.jpeg".into()),
            alt: "a cat".into(),
            needs_auth: false,
        }])]
    );
    assert_eq!(
        only_body(&server, "/together/v1/images/generations")["model"],
        "black-forest-labs/FLUX.1-dev"
    );
    assert!(server.requests_to("/api/models/{a}/{b}").is_empty());
    assert!(server.requests_to("/models/{a}/{b}").is_empty());
}

#[tokio::test]
async fn loading_model_is_a_typed_error() {
    let server = FakeHfInference::new().loading(1, 20.0).start().await;
    let client = client(&server);
    let (_, err) = drain(client.chat(req(QWEN, vec![Message::user("Hi")]))).await;
    match err {
        Some(Error::ModelLoading {
            provider,
            model,
            estimated,
        }) => {
            assert_eq!(provider, NAME);
            assert_eq!(model, QWEN);
            assert_eq!(estimated, Some(Duration::from_secs(20)));
        }
        other => panic!("expected ModelLoading, got {other:?}"),
    }
    assert_eq!(server.requests_to(QWEN_INFERENCE).len(), 1);
}

#[tokio::test]
async fn wait_for_model_retries_until_ready() {
    let server = FakeHfInference::new().loading(2, 0.05).start().await;
    let cfg = config(&server).with_option("wait_for_model", json!(true));
    let client = client_with(cfg, Duration::from_secs(10));
    let resp = client
        .complete(req(QWEN, vec![Message::user("Hi")]))
        .await
        .expect("ready");
    assert_eq!(resp.text, "Hello!");
    assert_eq!(server.requests_to(QWEN_INFERENCE).len(), 3);
    // Loading answers are not model-data failures: the data was fetched once.
    assert_eq!(server.requests_to(QWEN_DATA).len(), 1);
}

#[tokio::test]
async fn wait_for_model_is_bounded_by_the_deadline() {
    let server = FakeHfInference::new().loading(100, 5.0).start().await;
    let client = client_with(config(&server), Duration::from_secs(2));
    let started = std::time::Instant::now();
    let r = req(QWEN, vec![Message::user("Hi")]).with_extra("wait_for_model", json!(true));
    let (_, err) = drain(client.chat(r)).await;
    assert!(matches!(err, Some(Error::ModelLoading { .. })), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests_to(QWEN_INFERENCE).len(), 1);
}

#[tokio::test]
async fn missing_models_and_pipelines_are_not_supported() {
    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    // Hub 404.
    let (_, err) = drain(client.chat(req("no/such-model", vec![Message::user("Hi")]))).await;
    assert!(
        matches!(&err, Some(Error::ModelNotSupported { provider, model, .. }) if provider == NAME && model == "no/such-model"),
        "{err:?}"
    );
    assert!(server.requests_to("/models/no/such-model").is_empty());
    // Unsupported pipeline tag.
    let (_, err) =
        drain(client.chat(req("facebook/bart-large-cnn", vec![Message::user("Hi")]))).await;
    assert!(
        matches!(err, Some(Error::ModelNotSupported { .. })),
        "{err:?}"
    );
    // Inference 404 (the Hub lookup is skipped by a forced template).
    let r = req("no/such-model", vec![Message::user("Hi")]).with_extra("template", json!("chatml"));
    let (_, err) = drain(client.chat(r)).await;
    assert!(
        matches!(err, Some(Error::ModelNotSupported { .. })),
        "{err:?}"
    );
    assert_eq!(server.requests_to("/models/no/such-model").len(), 1);
    assert_eq!(server.requests_to("/api/models/no/such-model").len(), 1);
}

#[tokio::test]
async fn status_errors_follow_the_generic_rules() {
    let server = FakeHfInference::new()
        .api_key("hf_secret_token")
        .start()
        .await;
    let wrong = client_with(
        config(&server).with_api_key("hf_wrong_token"),
        Duration::from_secs(10),
    );
    let (_, err) = drain(wrong.chat(req(QWEN, vec![Message::user("Hi")]))).await;
    let err = err.expect("error");
    assert!(matches!(err, Error::MissingAuth { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("hf_wrong_token")
            && !format!("{err:?}").contains("hf_wrong_token")
    );

    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    server.inject(QWEN_INFERENCE, Fault::rate_limited("60"));
    let (_, err) = drain(client.chat(req(QWEN, vec![Message::user("Hi")]))).await;
    assert!(matches!(err, Some(Error::RateLimited { .. })), "{err:?}");
    server.inject(QWEN_INFERENCE, Fault::status(500));
    let (_, err) = drain(client.chat(req(QWEN, vec![Message::user("Hi")]))).await;
    assert!(
        matches!(err, Some(Error::HttpStatus { status: 500, .. })),
        "{err:?}"
    );
    // A 503 that is not a loading answer stays a status error.
    server.inject(QWEN_INFERENCE, Fault::status(503));
    let (_, err) = drain(client.chat(req(QWEN, vec![Message::user("Hi")]))).await;
    assert!(
        matches!(err, Some(Error::HttpStatus { status: 503, .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn concurrent_requests_fetch_model_data_once() {
    let server = FakeHfInference::new().start().await;
    server.inject(QWEN_DATA, Fault::Delay(Duration::from_millis(200)));
    let client = client(&server);
    let calls = (0..6).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { c.complete(req(QWEN, vec![Message::user("Hi")])).await })
    });
    for call in calls.collect::<Vec<_>>() {
        let resp = call.await.expect("join").expect("completion");
        assert_eq!(resp.text, "Hello!");
    }
    assert_eq!(server.requests_to(QWEN_DATA).len(), 1);
    assert_eq!(server.requests_to(QWEN_INFERENCE).len(), 6);
    // Cached for later calls too.
    client
        .complete(req(QWEN, vec![Message::user("Hi")]))
        .await
        .expect("completion");
    assert_eq!(server.requests_to(QWEN_DATA).len(), 1);
}

#[tokio::test]
async fn model_data_failures_are_not_cached() {
    let server = FakeHfInference::new().start().await;
    server.inject(QWEN_DATA, Fault::status(500));
    let client = client(&server);
    let (_, err) = drain(client.chat(req(QWEN, vec![Message::user("Hi")]))).await;
    assert!(
        matches!(err, Some(Error::HttpStatus { status: 500, .. })),
        "{err:?}"
    );
    client
        .complete(req(QWEN, vec![Message::user("Hi")]))
        .await
        .expect("second call");
    assert_eq!(server.requests_to(QWEN_DATA).len(), 2);
}

#[tokio::test]
async fn aliases_and_g4f_name_route_here() {
    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    // Alias without naming the provider.
    let resp = client
        .complete(ChatRequest::new("llama-3.3-70b", vec![Message::user("Hi")]))
        .await
        .expect("alias");
    assert_eq!(resp.text, "Hello!");
    assert_eq!(
        server
            .requests_to("/models/meta-llama/Llama-3.3-70B-Instruct")
            .len(),
        1
    );
    // g4f class name as the provider, empty model → default model.
    let r = ChatRequest::new("", vec![Message::user("Hi")]).with_provider("HuggingFaceInference");
    client.complete(r).await.expect("default model");
    assert_eq!(server.requests_to(QWEN_INFERENCE).len(), 1);
}

#[tokio::test]
async fn discovery_merges_hub_listings() {
    let server = FakeHfInference::new().start().await;
    let client = client(&server);
    let provider = client.provider(NAME).expect("provider");
    let ctx = Context::new(HttpClient::new(HttpConfig::default()).expect("http"));
    let models = provider.models(&ctx).await.expect("models");
    let want: Vec<&str> = vec![
        // trending ≥ 10 warm text-generation models, in listing order
        "Qwen/Qwen2.5-72B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
        "mistralai/Mistral-Nemo-Instruct-2407",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        // vision models
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
        "Qwen/Qwen2-VL-7B-Instruct",
        // the rest of the static text models
        "CohereForAI/c4ai-command-r-plus-08-2024",
        "Qwen/QwQ-32B",
        "nvidia/Llama-3.1-Nemotron-70B-Instruct-HF",
        "Qwen/Qwen2.5-Coder-32B-Instruct",
        "microsoft/Phi-3.5-mini-instruct",
        // image models: static, then trending ≥ 20
        "black-forest-labs/FLUX.1-dev",
        "black-forest-labs/FLUX.1-schnell",
        "stabilityai/stable-diffusion-3.5-large",
    ];
    assert_eq!(models, want);
    let listings = server.requests_to("/api/models");
    assert_eq!(listings.len(), 2);
    assert_eq!(
        listings[0].query.as_deref(),
        Some("inference=warm&pipeline_tag=text-generation")
    );
    assert_eq!(
        listings[1].query.as_deref(),
        Some("pipeline_tag=text-to-image")
    );
    assert!(listings.iter().all(|r| r.bearer_token().is_none()));
    // Cached.
    provider.models(&ctx).await.expect("models");
    assert_eq!(server.requests_to("/api/models").len(), 2);
    // Failing listings keep the static lists.
    let server = FakeHfInference::new().start().await;
    server.inject_times("/api/models", Fault::status(500), 2);
    let client = client_with(config(&server), Duration::from_secs(10));
    let listed = client.provider_models(NAME).await.expect("models");
    assert!(
        listed
            .iter()
            .any(|m| m == "microsoft/Phi-3.5-mini-instruct")
    );
    assert!(
        !listed
            .iter()
            .any(|m| m == "stabilityai/stable-diffusion-3.5-large")
    );
}

#[tokio::test]
async fn router_mode_uses_the_openai_route() {
    let server = FakeHfInference::new().api_key("hf_r").start().await;
    let cfg = config(&server)
        .with_api_key("hf_r")
        .with_option("mode", json!("router"));
    let client = client_with(cfg, Duration::from_secs(10));
    let r = req(
        "llama-3",
        vec![Message::system("S"), Message::user("Hi there")],
    )
    .with_extra("wait_for_model", json!(false));
    let resp = client.complete(r).await.expect("router");
    assert_eq!(resp.text, "echo: Hi there");
    let body = only_body(&server, "/v1/chat/completions");
    assert_eq!(body["model"], "meta-llama/Llama-3.3-70B-Instruct");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "S"})
    );
    assert!(
        body.get("wait_for_model").is_none() && body.get("mode").is_none(),
        "{body}"
    );
    assert_eq!(
        server.requests_to("/v1/chat/completions")[0].bearer_token(),
        Some("hf_r")
    );
    assert!(server.requests_to("/api/models/{a}/{b}").is_empty());
}

#[tokio::test]
async fn self_hosted_tgi_with_a_forced_template() {
    let server = FakeHfInference::new().start().await;
    let cfg = ProviderConfig::default()
        .with_base_url(server.url(""))
        .with_origin(
            "hub",
            format!("http://127.0.0.1:{}", llmux_testkit::closed_port()),
        )
        .with_option("tgi", json!(true))
        .with_option("template", json!("llama3"));
    let client = client_with(cfg, Duration::from_secs(10));
    let resp = client
        .complete(req("my-local-model", vec![Message::user("Hi")]))
        .await
        .expect("tgi");
    assert_eq!(resp.text, "Hello!");
    let body = only_body(&server, "/");
    assert!(
        body["inputs"]
            .as_str()
            .is_some_and(|s| s.starts_with("<|begin_of_text|>")),
        "{body}"
    );
}

#[tokio::test]
async fn origins_come_from_the_environment_names() {
    let server = FakeHfInference::new()
        .together_urls(["https://img/x.png"])
        .start()
        .await;
    let reg = llmux_core::registrations()
        .expect("registrations")
        .into_iter()
        .find(|r| r.name == NAME)
        .expect("registered");
    assert_eq!(reg.g4f_name, "HuggingFaceInference");
    let url = server.url("");
    let cfg = ProviderConfig::from_lookup(NAME, &reg.extra_origin_keys(), |k| match k {
        "LLMUX_HUGGINGFACE_INFERENCE_BASE_URL"
        | "LLMUX_HUGGINGFACE_INFERENCE_HUB_URL"
        | "LLMUX_HUGGINGFACE_INFERENCE_ROUTER_URL" => Some(url.clone()),
        "LLMUX_HUGGINGFACE_INFERENCE_API_KEY" => Some("hf_env".into()),
        _ => None,
    });
    let client = client_with(cfg, Duration::from_secs(10));
    client
        .complete(req(QWEN, vec![Message::user("Hi")]))
        .await
        .expect("base + hub");
    client
        .complete(req("flux", vec![Message::user("x")]))
        .await
        .expect("router");
    assert_eq!(server.requests().len(), 3);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.bearer_token() == Some("hf_env"))
    );
    let info = client.provider(NAME).expect("provider").info().clone();
    assert!(info.working);
    let keys: Vec<&str> = info.origins.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["base", "hub", "router"]);
}
