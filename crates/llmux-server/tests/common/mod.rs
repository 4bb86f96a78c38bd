//! Shared harness of the gateway's integration tests: a gateway in this process over the
//! testkit's fake OpenAI upstream (through the openai-compat provider).

#![allow(dead_code)]

use std::time::Duration;

use llmux::{Client, ClientBuilder, ProviderConfig};
use llmux_server::{Gateway, ServerConfig};
use llmux_testkit::FakeServer;
use llmux_testkit::client::{self, ClientResponse};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Deadline of every wait in these tests.
pub const T: Duration = Duration::from_secs(5);

/// A running gateway; stops when dropped or with [`Gw::stop`].
pub struct Gw {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Gw {
    /// The gateway URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Stops the gateway and waits (bounded) until it has.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(T, &mut self.task)
            .await
            .expect("serve returns")
            .expect("join")
    }

    /// `POST path` with a JSON body and headers.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> ClientResponse {
        client::post_json(&self.url(path), headers, body)
            .await
            .expect("response")
    }

    /// `GET path` with headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> ClientResponse {
        client::send(
            http::Method::GET,
            &self.url(path),
            headers,
            bytes::Bytes::new(),
        )
        .await
        .expect("response")
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The registration of the openai-compat provider alone.
pub fn only_openai_compat() -> Vec<&'static llmux::Registration> {
    llmux_testkit::chat::registrations(&["openai-compat"])
}

/// A client whose only provider is openai-compat at `fake`.
pub fn builder(fake: &FakeServer) -> ClientBuilder {
    Client::builder()
        .ignore_env()
        .registrations(only_openai_compat())
        .provider(
            "openai-compat",
            ProviderConfig::default().with_base_url(fake.url("/v1")),
        )
}

/// A client of [`builder`].
pub fn openai_client(fake: &FakeServer) -> Client {
    builder(fake).build().expect("client")
}

/// Starts `fake` and a gateway over it (default configuration).
pub async fn start(fake: llmux_testkit::openai::FakeOpenAi) -> (FakeServer, Gw) {
    let fake = fake.start().await;
    let gw = serve(openai_client(&fake), config()).await;
    (fake, gw)
}

/// `POST path` with a JSON body and no extra headers.
pub async fn post(gw: &Gw, path: &str, body: &Value) -> ClientResponse {
    gw.post(path, &[], body).await
}

/// A configuration on a free loopback port.
pub fn config() -> ServerConfig {
    ServerConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..ServerConfig::default()
    }
}

/// Binds and serves a gateway.
pub async fn serve(client: Client, config: ServerConfig) -> Gw {
    let bound = Gateway::new(client, config).bind().await.expect("bind");
    let url = format!("http://{}", bound.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async {
        let _ = rx.await;
    }));
    Gw {
        url,
        stop: Some(tx),
        task,
    }
}

/// A one-message chat request body.
pub fn hi(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi there"}]})
}

/// The status and the `error` object of an error response.
pub async fn error_of(resp: ClientResponse) -> (u16, Value) {
    let status = resp.status.as_u16();
    let v = resp.json().await.expect("error json");
    (status, v["error"].clone())
}

/// The `data:` payloads of an SSE body.
pub fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The JSON `data:` payloads of an SSE body (without `[DONE]`).
pub fn json_events(body: &str) -> Vec<Value> {
    events(body)
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("event json"))
        .collect()
}

/// The concatenated `choices[0].delta.<field>` of stream chunks.
pub fn concat(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"][field].as_str())
        .collect()
}
