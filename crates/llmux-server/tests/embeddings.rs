//! `POST /v1/embeddings` and `Client::embed` against the testkit fakes: the OpenAI fake through
//! `openai-compat` (passthrough) and the Hugging Face fake through `huggingface-inference`
//! (feature extraction, classic and router routes, mean pooling).

use llmux::{Client, EmbeddingInput, EmbeddingRequest, ProviderConfig};
use llmux_server::{Gateway, ServerConfig};
use llmux_testkit::client;
use llmux_testkit::embeddings::{FAKE_DIMENSIONS, fake_vector};
use llmux_testkit::hf_inference::FakeHfInference;
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault};
use serde_json::{Value, json};
use tokio::sync::oneshot;

fn registrations(names: &[&str]) -> Vec<&'static llmux::Registration> {
    llmux_testkit::chat::registrations(names)
}

fn openai_client(fake: &FakeServer) -> Client {
    Client::builder()
        .ignore_env()
        .registrations(registrations(&["openai-compat"]))
        .provider(
            "openai-compat",
            ProviderConfig::default().with_base_url(fake.url("/v1")),
        )
        .build()
        .expect("client")
}

fn hf_client(fake: &FakeServer, mode: &str) -> Client {
    let mut cfg = ProviderConfig::default()
        .with_base_url(fake.url(""))
        .with_origin("router", fake.url(""));
    cfg.options.insert("mode".into(), json!(mode));
    Client::builder()
        .ignore_env()
        .registrations(registrations(&["huggingface-inference"]))
        .provider("huggingface-inference", cfg)
        .build()
        .expect("client")
}

async fn serve(client: Client) -> (String, oneshot::Sender<()>) {
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..ServerConfig::default()
    };
    let bound = Gateway::new(client, config).bind().await.expect("bind");
    let url = format!("http://{}/v1/embeddings", bound.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(bound.serve(async {
        let _ = rx.await;
    }));
    (url, tx)
}

fn decode(b64: &str) -> Vec<f32> {
    llmux_openai::embeddings::decode_base64_vector(b64).expect("base64 vector")
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[tokio::test]
async fn gateway_float_and_base64() {
    let fake = FakeOpenAi::new().start().await;
    let (url, _stop) = serve(openai_client(&fake)).await;
    let body = json!({"model": "fake-model", "input": ["hello", "world"]});
    let resp = client::post_json(&url, &[], &body).await.expect("resp");
    assert_eq!(resp.status, 200);
    let v = resp.json().await.expect("json");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "fake-model");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["object"], "embedding");
    let first: Vec<f32> =
        serde_json::from_value(v["data"][0]["embedding"].clone()).expect("floats");
    assert!(close(&first, &fake_vector("hello", FAKE_DIMENSIONS)));
    assert_eq!(v["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
    let sent = fake.requests_to("/v1/embeddings")[0]
        .json()
        .expect("upstream body");
    assert_eq!(
        sent["encoding_format"], "float",
        "llmux encodes base64 itself"
    );

    let body = json!({"model": "fake-model", "input": "hello", "encoding_format": "base64", "dimensions": 4});
    let v = client::post_json(&url, &[], &body)
        .await
        .expect("resp")
        .json()
        .await
        .expect("json");
    let b64 = v["data"][0]["embedding"].as_str().expect("a base64 string");
    assert!(
        close(&decode(b64), &fake_vector("hello", 4)),
        "dimensions forwarded"
    );
}

#[tokio::test]
async fn gateway_token_arrays_and_bad_requests() {
    let fake = FakeOpenAi::new().start().await;
    let (url, _stop) = serve(openai_client(&fake)).await;
    let v = client::post_json(
        &url,
        &[],
        &json!({"model": "fake-model", "input": [[1, 2], [3]]}),
    )
    .await
    .expect("resp")
    .json()
    .await
    .expect("json");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{v}");
    for (body, param) in [
        (json!({"model": "fake-model", "input": []}), "input"),
        (json!({"model": "fake-model", "input": {"a": 1}}), "input"),
        (
            json!({"model": "fake-model", "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (json!({"input": "x"}), "model"),
    ] {
        let resp = client::post_json(&url, &[], &body).await.expect("resp");
        assert_eq!(resp.status, 400, "{body}");
        let e = resp.json().await.expect("json");
        assert_eq!(e["error"]["param"], param, "{e}");
    }
}

#[tokio::test]
async fn upstream_failures_get_statuses() {
    let fake = FakeOpenAi::new().start().await;
    let (url, _stop) = serve(openai_client(&fake)).await;
    fake.inject("/v1/embeddings", Fault::rate_limited("30"));
    let resp = client::post_json(&url, &[], &json!({"model": "fake-model", "input": "x"}))
        .await
        .expect("resp");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("30"));
}

#[tokio::test]
async fn huggingface_feature_extraction_classic_and_router() {
    let fake = FakeHfInference::new().start().await;
    for mode in ["inference", "router"] {
        let client = hf_client(&fake, mode);
        // sentence-transformers model: one vector per input
        let req = EmbeddingRequest::new(
            "huggingface-inference:sentence-transformers/all-MiniLM-L6-v2",
            ["a b", "c"],
        );
        let r = client.embed(req).await.expect(mode);
        assert_eq!(r.provider, "huggingface-inference");
        assert!(close(
            &r.embeddings[0],
            &fake_vector("a b", FAKE_DIMENSIONS)
        ));
        // plain transformer: token vectors, mean-pooled and normalised
        let req = EmbeddingRequest::new(
            "huggingface-inference:google-bert/bert-base-uncased",
            ["a b"],
        );
        let r = client.embed(req).await.expect(mode);
        let mut want: Vec<f32> = fake_vector("a", FAKE_DIMENSIONS)
            .iter()
            .zip(fake_vector("b", FAKE_DIMENSIONS))
            .map(|(x, y)| (x + y) / 2.0)
            .collect();
        llmux::core::embedding::normalize(&mut want);
        assert!(close(&r.embeddings[0], &want), "{mode}");
    }
    assert_eq!(
        fake.requests_to("/models/{org}/{name}").len(),
        2,
        "classic route"
    );
    let routed = fake.requests_to("/hf-inference/models/{org}/{name}/pipeline/feature-extraction");
    assert_eq!(routed.len(), 2, "router route");
    assert_eq!(
        routed[0].json().expect("body"),
        json!({"inputs": ["a b", "c"], "normalize": true})
    );
    // token arrays: refused with a clear 400
    let req = EmbeddingRequest::with_input(
        "huggingface-inference:google-bert/bert-base-uncased",
        EmbeddingInput::Tokens(vec![vec![1, 2]]),
    );
    let e = hf_client(&fake, "inference")
        .embed(req)
        .await
        .expect_err("refused");
    assert!(
        matches!(e, llmux::Error::Unsupported { ref param, .. } if param == "input"),
        "{e}"
    );
    let (url, _stop) = serve(hf_client(&fake, "inference")).await;
    let resp = client::post_json(
        &url,
        &[],
        &json!({"model": "huggingface-inference:google-bert/bert-base-uncased", "input": [[1, 2]]}),
    )
    .await
    .expect("resp");
    assert_eq!(resp.status, 400);
    let e: Value = resp.json().await.expect("json");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("token arrays")),
        "{e}"
    );
}

#[tokio::test]
async fn providers_without_embeddings_are_refused() {
    let client = Client::builder()
        .ignore_env()
        .registrations(registrations(&["microsoft-phi-4"]))
        .build()
        .expect("client");
    let (url, _stop) = serve(client).await;
    let resp = client::post_json(
        &url,
        &[],
        &json!({"model": "microsoft-phi-4:phi-4", "input": "x"}),
    )
    .await
    .expect("resp");
    assert_eq!(resp.status, 400);
    let e: Value = resp.json().await.expect("json");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("embeddings")),
        "{e}"
    );
}

#[tokio::test]
async fn client_embed_falls_back_before_any_answer() {
    let a = FakeOpenAi::new().start().await;
    let b = FakeOpenAi::new().start().await;
    a.inject("/v1/embeddings", Fault::status(500));
    let cfg = |s: &FakeServer| {
        let mut c = ProviderConfig::default().with_base_url(s.url("/v1"));
        c.models = vec!["emb-model".into()];
        c.enabled = Some(true);
        c
    };
    let client = Client::builder()
        .ignore_env()
        .registrations(registrations(&["openai-compat"]))
        .instance("first", "openai-compat", cfg(&a))
        .instance("second", "openai-compat", cfg(&b))
        .priority(["first", "second"])
        .max_retries(0)
        .build()
        .expect("client");
    let r = client
        .embed(EmbeddingRequest::new("emb-model", ["x"]).with_api_key("sk-caller"))
        .await
        .expect("the second instance answers");
    assert_eq!(r.provider, "second");
    assert_eq!(a.requests_to("/v1/embeddings").len(), 1);
    let sent = &b.requests_to("/v1/embeddings")[0];
    assert_ne!(
        sent.bearer_token(),
        Some("sk-caller"),
        "a caller's key goes only to a provider it named"
    );
    // both failing: every attempt is named
    b.inject("/v1/embeddings", Fault::status(500));
    a.inject("/v1/embeddings", Fault::status(500));
    let e = client
        .embed(EmbeddingRequest::new("emb-model", ["x"]))
        .await
        .expect_err("all failed");
    let msg = e.to_string();
    assert!(msg.contains("first") && msg.contains("second"), "{msg}");
}
