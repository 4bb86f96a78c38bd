//! A fake Hugging Face upstream: the Hub API (model listings with trending
//! scores, per-model data), the serverless Inference API (TGI-style SSE
//! streaming, `[{"generated_text"}]` JSON, image bytes, "model is loading"
//! 503s) and the router (the Together image route and an OpenAI-compatible
//! chat route), all on one server so every origin can point at it.
//!
//! Routes:
//! - `GET /api/models?pipeline_tag=T[&inference=warm]` — summaries
//!   (`id`, `modelId`, `pipeline_tag`, `trendingScore` …) of the models with
//!   that pipeline tag (only warm ones with `inference=warm`), in fixture order;
//! - `GET /api/models/{org}/{name}` (or `/api/models/{name}`) — the model
//!   data (`id`, `author`, `pipeline_tag`, `config.model_type`,
//!   `config.tokenizer_config.eos_token`), or 404
//!   `{"error":"Repository not found"}`;
//! - `POST /models/{org}/{name}` (or `/models/{name}`) — inference: 404
//!   `{"error":"Model … does not exist"}` for unknown models; 503
//!   `{"error":"Model … is currently loading","estimated_time":…}` while
//!   loading; text-to-image models answer image bytes (`image/jpeg`), text
//!   models TGI SSE (`"stream": true`) or `[{"generated_text": …}]`. As real
//!   TGI, generation honours `max_new_tokens` and `stop`, and only with
//!   `parameters.details: true` reports `details` (`finish_reason` `length` /
//!   `eos_token` / `stop_sequence`, `generated_tokens`, `seed`, `prefill`,
//!   `tokens`; on the last stream event `input_length` instead of the lists);
//!   non-streaming answers carry `x-prompt-tokens` / `x-generated-tokens`;
//! - `POST /` — a self-hosted TGI server's compatible route (text generation,
//!   any model);
//! - `POST /together/v1/images/generations` — 404 by default, or
//!   `{"data":[{"url":…}]}` with [`FakeHfInference::together_urls`];
//! - `/v1/chat/completions`, `/v1/models` — a [`FakeOpenAi`] in echo mode
//!   accepting any model (the router's OpenAI-compatible route).
//!
//! ```
//! # async fn demo() {
//! use llmux_testkit::hf_inference::FakeHfInference;
//! let server = FakeHfInference::new().tokens([" Hello", "!"]).start().await;
//! let origin = server.url(""); // base, hub and router origin at once
//! # let _ = origin;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::openai::FakeOpenAi;
use crate::reply::Reply;
use crate::server::{FakeServer, RecordedRequest, Router};

/// DeepSeek's end-of-sentence token (`｜` is U+FF5C, `▁` U+2581).
pub const DEEPSEEK_EOS: &str = "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>";

/// The bytes served for text-to-image models: a JPEG header (`FF D8 FF E0`,
/// `JFIF`) and a few filler bytes (enough for magic-number sniffing).
pub const FAKE_JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xFF, 0xD9,
];

/// One model known to the fake Hub.
#[derive(Clone, Debug, PartialEq)]
pub struct HfModel {
    /// Repository id (`org/name`).
    pub id: String,
    /// `author` (default: the part of the id before `/`).
    pub author: String,
    /// `pipeline_tag` (`None`: the field is missing).
    pub pipeline_tag: Option<String>,
    /// `config.model_type`.
    pub model_type: Option<String>,
    /// `config.tokenizer_config.eos_token` (a string or an AddedToken object).
    pub eos_token: Option<Value>,
    /// `trendingScore` in listings (`None`: the field is missing).
    pub trending_score: Option<f64>,
    /// Listed with `inference=warm`.
    pub warm: bool,
}

impl HfModel {
    /// A warm model with this id and pipeline tag, trending score 0.
    pub fn new(id: impl Into<String>, pipeline_tag: &str) -> Self {
        let id = id.into();
        let author = id.split_once('/').map(|(a, _)| a).unwrap_or("").to_owned();
        HfModel {
            id,
            author,
            pipeline_tag: Some(pipeline_tag.to_owned()),
            model_type: None,
            eos_token: None,
            trending_score: Some(0.0),
            warm: true,
        }
    }

    /// Sets `author`.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = author.into();
        self
    }

    /// Sets `config.model_type`.
    pub fn model_type(mut self, model_type: impl Into<String>) -> Self {
        self.model_type = Some(model_type.into());
        self
    }

    /// Sets `config.tokenizer_config.eos_token`.
    pub fn eos_token(mut self, eos: impl Into<Value>) -> Self {
        self.eos_token = Some(eos.into());
        self
    }

    /// Sets `trendingScore` (`None` leaves the field out).
    pub fn trending(mut self, score: Option<f64>) -> Self {
        self.trending_score = score;
        self
    }

    /// Leaves `pipeline_tag` out of the model data.
    pub fn no_pipeline_tag(mut self) -> Self {
        self.pipeline_tag = None;
        self
    }

    /// Not listed with `inference=warm`.
    pub fn cold(mut self) -> Self {
        self.warm = false;
        self
    }

    /// The listing entry (`GET /api/models`).
    pub fn summary(&self) -> Value {
        let mut v = json!({
            "_id": format!("fake-{}", self.id.len()),
            "id": self.id,
            "likes": 100,
            "private": false,
            "downloads": 1000,
            "tags": ["transformers"],
            "pipeline_tag": self.pipeline_tag,
            "library_name": "transformers",
            "createdAt": "2024-09-16T00:00:00.000Z",
            "modelId": self.id,
        });
        if let Some(s) = self.trending_score {
            v["trendingScore"] = json!(s);
        }
        v
    }

    /// The model data (`GET /api/models/<id>`).
    pub fn data(&self) -> Value {
        let mut config = serde_json::Map::new();
        if let Some(t) = &self.model_type {
            config.insert("model_type".into(), json!(t));
        }
        if let Some(e) = &self.eos_token {
            config.insert(
                "tokenizer_config".into(),
                json!({"bos_token": null, "eos_token": e, "pad_token": "<|endoftext|>"}),
            );
        }
        let mut v = json!({"_id": "fake", "id": self.id, "author": self.author, "config": config});
        if let Some(p) = &self.pipeline_tag {
            v["pipeline_tag"] = json!(p);
        }
        v
    }
}

/// The default fixtures: one model per chat-template branch, vision and
/// image models, a cold model and a model with an unsupported pipeline.
///
/// | id | pipeline | model_type | eos_token | trending |
/// |---|---|---|---|---|
/// | `Qwen/Qwen2.5-72B-Instruct` | text-generation | qwen2 | `<\|im_end\|>` | 42 |
/// | `meta-llama/Llama-3.3-70B-Instruct` | text-generation | llama | `<\|eot_id\|>` | 30 |
/// | `mistralai/Mistral-Nemo-Instruct-2407` | text-generation | mistral | `</s>` | 12 |
/// | `deepseek-ai/DeepSeek-R1-Distill-Qwen-32B` | text-generation | qwen2 | `{"content": "<｜end▁of▁sentence｜>"}` | 15 |
/// | `openai-community/gpt2` | text-generation | gpt2 | `<\|endoftext\|>` | 5 |
/// | `microsoft/Phi-3.5-mini-instruct` | text-generation | phi3 | `<\|endoftext\|>` | 8 |
/// | `someorg/end-model` | text-generation | phi3 | `<\|end\|>` | (missing) |
/// | `someorg/cold-model` | text-generation (cold) | llama | `</s>` | 50 |
/// | `Qwen/Qwen2-VL-7B-Instruct` | image-text-to-text | qwen2_vl | `<\|im_end\|>` | 20 |
/// | `black-forest-labs/FLUX.1-dev` | text-to-image | — | — | 60 |
/// | `black-forest-labs/FLUX.1-schnell` | text-to-image | — | — | 50 |
/// | `stabilityai/stable-diffusion-3.5-large` | text-to-image | — | — | 25 |
/// | `x/y` | text-to-image | — | — | 1 |
/// | `facebook/bart-large-cnn` | summarization | bart | `</s>` | 3 |
/// | `sentence-transformers/all-MiniLM-L6-v2` | sentence-similarity (one vector per input) | bert | — | 2 |
/// | `google-bert/bert-base-uncased` | feature-extraction (token vectors) | bert | — | 1 |
pub fn default_models() -> Vec<HfModel> {
    let text = |id: &str, model_type: &str, eos: Value, trending: Option<f64>| {
        HfModel::new(id, "text-generation")
            .model_type(model_type)
            .eos_token(eos)
            .trending(trending)
    };
    let image =
        |id: &str, trending: f64| HfModel::new(id, "text-to-image").trending(Some(trending));
    vec![
        text(
            "Qwen/Qwen2.5-72B-Instruct",
            "qwen2",
            json!("<|im_end|>"),
            Some(42.0),
        ),
        text(
            "meta-llama/Llama-3.3-70B-Instruct",
            "llama",
            json!("<|eot_id|>"),
            Some(30.0),
        ),
        text(
            "mistralai/Mistral-Nemo-Instruct-2407",
            "mistral",
            json!("</s>"),
            Some(12.0),
        ),
        text(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "qwen2",
            json!({"__type": "AddedToken", "content": DEEPSEEK_EOS, "lstrip": false,
                   "normalized": true, "rstrip": false, "single_word": false}),
            Some(15.0),
        ),
        text(
            "openai-community/gpt2",
            "gpt2",
            json!("<|endoftext|>"),
            Some(5.0),
        ),
        text(
            "microsoft/Phi-3.5-mini-instruct",
            "phi3",
            json!("<|endoftext|>"),
            Some(8.0),
        ),
        text("someorg/end-model", "phi3", json!("<|end|>"), None),
        text("someorg/cold-model", "llama", json!("</s>"), Some(50.0)).cold(),
        HfModel::new("Qwen/Qwen2-VL-7B-Instruct", "image-text-to-text")
            .model_type("qwen2_vl")
            .eos_token("<|im_end|>")
            .trending(Some(20.0)),
        image("black-forest-labs/FLUX.1-dev", 60.0),
        image("black-forest-labs/FLUX.1-schnell", 50.0),
        image("stabilityai/stable-diffusion-3.5-large", 25.0),
        image("x/y", 1.0),
        HfModel::new("facebook/bart-large-cnn", "summarization")
            .model_type("bart")
            .eos_token("</s>")
            .trending(Some(3.0)),
        HfModel::new(
            "sentence-transformers/all-MiniLM-L6-v2",
            "sentence-similarity",
        )
        .model_type("bert")
        .trending(Some(2.0)),
        HfModel::new("google-bert/bert-base-uncased", "feature-extraction")
            .model_type("bert")
            .trending(Some(1.0)),
    ]
}

/// Builder and configuration of the fake Hugging Face upstream.
///
/// Defaults: [`default_models`], reply tokens `[" Hello", "!"]` followed by
/// the special token `</s>`, no stream error, no loading phase, Together
/// route answering 404, no API key, no delays.
///
/// With an API key, every Hub, inference and router request must carry
/// `Authorization: Bearer KEY` (401 `{"error":"Invalid credentials in
/// Authorization header"}` otherwise).
#[derive(Clone, Debug)]
pub struct FakeHfInference {
    models: Vec<HfModel>,
    tokens: Vec<String>,
    end_token: Option<String>,
    stream_error: Option<(usize, String)>,
    loading: usize,
    estimated_time: f64,
    together_urls: Option<Vec<String>>,
    api_key: Option<String>,
    chunk_delay: Duration,
}

impl Default for FakeHfInference {
    fn default() -> Self {
        FakeHfInference {
            models: default_models(),
            tokens: vec![" Hello".to_owned(), "!".to_owned()],
            end_token: Some("</s>".to_owned()),
            stream_error: None,
            loading: 0,
            estimated_time: 0.1,
            together_urls: None,
            api_key: None,
            chunk_delay: Duration::ZERO,
        }
    }
}

impl FakeHfInference {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        FakeHfInference::default()
    }

    /// Replaces the model fixtures.
    pub fn models(mut self, models: Vec<HfModel>) -> Self {
        self.models = models;
        self
    }

    /// Adds a model, replacing a fixture with the same id.
    pub fn model(mut self, model: HfModel) -> Self {
        match self.models.iter_mut().find(|m| m.id == model.id) {
            Some(slot) => *slot = model,
            None => self.models.push(model),
        }
        self
    }

    /// The non-special tokens of every text answer (the non-streaming
    /// `generated_text` is their concatenation, untrimmed).
    pub fn tokens<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// The special token ending each stream (`None`: the stream ends without
    /// one, as when `max_new_tokens` is reached).
    pub fn end_token(mut self, token: Option<&str>) -> Self {
        self.end_token = token.map(str::to_owned);
        self
    }

    /// After `after` tokens, streams send `data:{"error":message,"error_type":"generation"}` and end.
    pub fn stream_error(mut self, after: usize, message: impl Into<String>) -> Self {
        self.stream_error = Some((after, message.into()));
        self
    }

    /// The first `times` inference requests answer 503 "currently loading"
    /// with this `estimated_time` (seconds).
    pub fn loading(mut self, times: usize, estimated_time: f64) -> Self {
        self.loading = times;
        self.estimated_time = estimated_time;
        self
    }

    /// The Together route answers these image URLs (instead of 404).
    pub fn together_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.together_urls = Some(urls.into_iter().map(Into::into).collect());
        self
    }

    /// Requires `Authorization: Bearer <key>` everywhere.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Delay between SSE events.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// The routes of this fake.
    pub fn router(self) -> Router {
        let mut openai = FakeOpenAi::new().models(Vec::<String>::new()).echo();
        if let Some(k) = &self.api_key {
            openai = openai.api_key(k.clone());
        }
        let state = Arc::new(State {
            cfg: self,
            inference_calls: AtomicUsize::new(0),
        });
        let s = [(); 7].map(|()| state.clone());
        let [s1, s2, s3, s4, s5, s6, s7] = s;
        Router::new()
            .get("/api/models", move |req| {
                let s = s1.clone();
                async move { s.guarded(&req, || s.listing(&req)) }
            })
            .get("/api/models/{org}/{name}", move |req| {
                let s = s2.clone();
                async move { s.guarded(&req, || s.model_data(&req)) }
            })
            .get("/api/models/{name}", move |req| {
                let s = s3.clone();
                async move { s.guarded(&req, || s.model_data(&req)) }
            })
            .post("/models/{org}/{name}", move |req| {
                let s = s4.clone();
                async move { s.guarded(&req, || s.inference(&req)) }
            })
            .post("/models/{name}", move |req| {
                let s = s5.clone();
                async move { s.guarded(&req, || s.inference(&req)) }
            })
            .post("/", move |req| {
                let s = s6.clone();
                async move { s.guarded(&req, || s.generate(&req)) }
            })
            .merge(feature_extraction_route(state.clone()))
            .post("/together/v1/images/generations", move |req| {
                let s = s7.clone();
                async move { s.guarded(&req, || s.together(&req)) }
            })
            .merge(openai.router())
    }

    /// Starts a [`FakeServer`] serving [`FakeHfInference::router`].
    pub async fn start(self) -> FakeServer {
        FakeServer::start(self.router()).await
    }
}

/// The router's `POST /hf-inference/models/{org}/{name}/pipeline/feature-extraction`: the same
/// answer as the classic `POST /models/{org}/{name}` (see [`crate::embeddings`]).
fn feature_extraction_route(state: Arc<State>) -> Router {
    Router::new().post(
        "/hf-inference/models/{org}/{name}/pipeline/feature-extraction",
        move |req| {
            let s = state.clone();
            async move { s.guarded(&req, || s.inference(&req)) }
        },
    )
}

struct State {
    cfg: FakeHfInference,
    inference_calls: AtomicUsize,
}

fn hf_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"error": message}))
}

/// The model id of a `{org}/{name}` or `{name}` route.
fn model_id(req: &RecordedRequest) -> String {
    match (req.param("org"), req.param("name")) {
        (Some(org), Some(name)) => format!("{org}/{name}"),
        (None, Some(name)) => name.to_owned(),
        _ => String::new(),
    }
}

/// One TGI SSE frame (`data:` without a space, as TGI writes it).
fn tgi_frame(value: &Value) -> Bytes {
    Bytes::from(format!("data:{value}\n\n"))
}

impl State {
    fn guarded(&self, req: &RecordedRequest, f: impl FnOnce() -> Reply) -> Reply {
        match &self.cfg.api_key {
            Some(key) if req.bearer_token() != Some(key.as_str()) => {
                hf_error(401, "Invalid credentials in Authorization header")
            }
            _ => f(),
        }
    }

    fn find(&self, id: &str) -> Option<&HfModel> {
        self.cfg.models.iter().find(|m| m.id == id)
    }

    fn listing(&self, req: &RecordedRequest) -> Reply {
        let tag = req.query_param("pipeline_tag");
        let warm_only = req.query_param("inference").as_deref() == Some("warm");
        let list: Vec<Value> = self
            .cfg
            .models
            .iter()
            .filter(|m| tag.is_none() || m.pipeline_tag == tag)
            .filter(|m| !warm_only || m.warm)
            .map(HfModel::summary)
            .collect();
        Reply::json(200, &Value::Array(list))
    }

    fn model_data(&self, req: &RecordedRequest) -> Reply {
        match self.find(&model_id(req)) {
            Some(m) => Reply::json(200, &m.data()),
            None => hf_error(404, "Repository not found"),
        }
    }

    fn inference(&self, req: &RecordedRequest) -> Reply {
        let id = model_id(req);
        let Some(model) = self.find(&id) else {
            return hf_error(404, &format!("Model {id} does not exist"));
        };
        if self.inference_calls.fetch_add(1, Ordering::SeqCst) < self.cfg.loading {
            return Reply::json(
                503,
                &json!({"error": format!("Model {id} is currently loading"),
                        "estimated_time": self.cfg.estimated_time}),
            );
        }
        match model.pipeline_tag.as_deref() {
            Some("text-to-image") => match req.json() {
                Ok(body) if body.get("inputs").is_some_and(Value::is_string) => {
                    Reply::bytes(200, "image/jpeg", FAKE_JPEG)
                }
                _ => validation_error("`inputs` must be a string"),
            },
            Some("text-generation" | "image-text-to-text") => self.generate(req),
            Some(tag @ ("feature-extraction" | "sentence-similarity")) => {
                crate::embeddings::hf_features(tag, req)
            }
            other => hf_error(
                400,
                &format!(
                    "pipeline {} is not served by the fake",
                    other.unwrap_or("none")
                ),
            ),
        }
    }

    /// TGI text generation: SSE when `"stream": true`, else `[{"generated_text"}]` with the
    /// `x-prompt-tokens` / `x-generated-tokens` headers; `details` only when
    /// `parameters.details` is true (see [`Generation`]).
    fn generate(&self, req: &RecordedRequest) -> Reply {
        let Ok(body) = req.json() else {
            return validation_error("request body is not JSON");
        };
        let Some(inputs) = body.get("inputs").and_then(Value::as_str) else {
            return validation_error("`inputs` must be a string");
        };
        let params = body.get("parameters");
        let g = Generation::run(&self.cfg, params, inputs);
        let details = params
            .and_then(|p| p.get("details"))
            .and_then(Value::as_bool)
            == Some(true);
        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            let mut answer = json!({"generated_text": g.text()});
            if details {
                answer["details"] = g.details();
            }
            return Reply::json(200, &json!([answer]))
                .header("x-prompt-tokens", &g.input_length.to_string())
                .header("x-generated-tokens", &g.generated_tokens().to_string());
        }
        let errored_at = self
            .cfg
            .stream_error
            .as_ref()
            .filter(|(after, _)| *after < g.tokens.len());
        let events = g.events();
        let last = events.len().saturating_sub(1);
        let mut frames = Vec::new();
        for (i, mut event) in events.into_iter().enumerate() {
            if let Some((after, message)) = errored_at {
                if i == *after {
                    frames.push(tgi_frame(
                        &json!({"error": message, "error_type": "generation"}),
                    ));
                    break;
                }
            }
            if i == last {
                event["generated_text"] = json!(g.text());
                if details {
                    event["details"] = g.stream_details();
                }
            }
            frames.push(tgi_frame(&event));
        }
        Reply::chunked("text/event-stream", frames).chunk_delay(self.cfg.chunk_delay)
    }

    fn together(&self, req: &RecordedRequest) -> Reply {
        let Some(urls) = &self.cfg.together_urls else {
            return hf_error(404, "Not Found");
        };
        let model = req
            .json()
            .ok()
            .and_then(|b| b.get("model").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let data: Vec<Value> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| json!({"index": i, "url": u}))
            .collect();
        Reply::json(
            200,
            &json!({"id": "fake-together", "model": model, "object": "list", "data": data}),
        )
    }
}

/// One generation as TGI runs it: the configured tokens, cut after `max_new_tokens` tokens
/// (`finish_reason: "length"`) or once the text ends with one of the `stop` sequences
/// (`"stop_sequence"`, the sequence kept in the text); otherwise the end token follows
/// (`"eos_token"`, counted as a generated token), or, without one, `"length"`. The prompt is
/// one token per whitespace-separated word of `inputs`.
struct Generation {
    tokens: Vec<String>,
    eos: Option<String>,
    finish: &'static str,
    input_length: usize,
    seed: Value,
}

impl Generation {
    fn run(cfg: &FakeHfInference, params: Option<&Value>, inputs: &str) -> Self {
        let param = |k: &str| params.and_then(|p| p.get(k));
        let max = param("max_new_tokens")
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let stops: Vec<&str> = param("stop")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut g = Generation {
            tokens: Vec::new(),
            eos: None,
            finish: "length",
            input_length: inputs.split_whitespace().count(),
            seed: param("seed").cloned().unwrap_or(Value::Null),
        };
        let mut text = String::new();
        for t in &cfg.tokens {
            if g.tokens.len() >= max {
                return g;
            }
            g.tokens.push(t.clone());
            text.push_str(t);
            if stops.iter().any(|s| text.ends_with(s)) {
                g.finish = "stop_sequence";
                return g;
            }
        }
        if let Some(eos) = cfg.end_token.as_ref().filter(|_| g.tokens.len() < max) {
            g.eos = Some(eos.clone());
            g.finish = "eos_token";
        }
        g
    }

    /// The generated text (the non-special tokens, untrimmed).
    fn text(&self) -> String {
        self.tokens.concat()
    }

    fn generated_tokens(&self) -> usize {
        self.tokens.len() + usize::from(self.eos.is_some())
    }

    /// One stream event per generated token (`generated_text` and `details` null).
    fn events(&self) -> Vec<Value> {
        let token = |i: usize, text: &str, special: bool| {
            json!({"id": if special { 2 } else { 1000 + i }, "text": text,
                   "logprob": if special { 0.0 } else { -0.1 }, "special": special})
        };
        let mut tokens: Vec<Value> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| token(i, t, false))
            .collect();
        if let Some(eos) = &self.eos {
            tokens.push(token(0, eos, true));
        }
        tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| json!({"index": i + 1, "token": t, "generated_text": null, "details": null}))
            .collect()
    }

    /// TGI's non-streaming `details` (`prefill` is empty without `decoder_input_details`).
    fn details(&self) -> Value {
        let tokens: Vec<Value> = self
            .events()
            .into_iter()
            .map(|e| e["token"].clone())
            .collect();
        json!({"finish_reason": self.finish, "generated_tokens": self.generated_tokens(),
               "seed": self.seed, "prefill": [], "tokens": tokens})
    }

    /// TGI's `StreamDetails` of the last event.
    fn stream_details(&self) -> Value {
        json!({"finish_reason": self.finish, "generated_tokens": self.generated_tokens(),
               "seed": self.seed, "input_length": self.input_length})
    }
}

fn validation_error(message: &str) -> Reply {
    Reply::json(
        422,
        &json!({"error": format!("Input validation error: {message}"), "error_type": "validation"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, ClientResponse};

    async fn tgi(server: &FakeServer, body: Value) -> ClientResponse {
        client::post_json(&server.url("/"), &[], &body)
            .await
            .expect("tgi")
    }

    /// `details` only when asked, shaped like TGI's `Details`.
    #[tokio::test]
    async fn details_only_when_asked() {
        let server = FakeHfInference::new()
            .tokens([" a", " b", " c"])
            .start()
            .await;
        let plain = tgi(
            &server,
            json!({"inputs": "one two", "parameters": {"max_new_tokens": 2}}),
        )
        .await;
        assert_eq!(plain.header("x-prompt-tokens"), Some("2"));
        assert_eq!(plain.header("x-generated-tokens"), Some("2"));
        assert_eq!(
            plain.json().await.expect("json"),
            json!([{"generated_text": " a b"}])
        );
        let cut = tgi(
            &server,
            json!({"inputs": "x", "parameters": {"max_new_tokens": 2, "details": true, "seed": 3}}),
        )
        .await
        .json()
        .await
        .expect("json");
        assert_eq!(
            cut[0]["details"],
            json!({"finish_reason": "length", "generated_tokens": 2, "seed": 3, "prefill": [],
                   "tokens": [{"id": 1000, "text": " a", "logprob": -0.1, "special": false},
                              {"id": 1001, "text": " b", "logprob": -0.1, "special": false}]})
        );
        let eos = tgi(
            &server,
            json!({"inputs": "x", "parameters": {"details": true}}),
        )
        .await
        .json()
        .await
        .expect("json");
        assert_eq!(
            (
                eos[0]["details"]["finish_reason"].clone(),
                eos[0]["details"]["generated_tokens"].clone()
            ),
            (json!("eos_token"), json!(4))
        );
        let stop = tgi(
            &server,
            json!({"inputs": "x", "parameters": {"details": true, "stop": ["b"]}}),
        )
        .await
        .json()
        .await
        .expect("json");
        assert_eq!(stop[0]["generated_text"], " a b");
        assert_eq!(stop[0]["details"]["finish_reason"], "stop_sequence");
    }

    #[tokio::test]
    async fn stream_details_on_the_last_event_only_when_asked() {
        let server = FakeHfInference::new()
            .tokens([" a", " b"])
            .end_token(None)
            .start()
            .await;
        let events = |text: String| -> Vec<Value> {
            text.split("\n\n")
                .filter_map(|f| f.strip_prefix("data:"))
                .map(|j| serde_json::from_str(j).expect("json"))
                .collect()
        };
        let plain = events(
            tgi(&server, json!({"inputs": "x", "stream": true}))
                .await
                .text()
                .await
                .expect("body"),
        );
        assert!(plain.iter().all(|e| e["details"].is_null()), "{plain:?}");
        assert_eq!(plain[1]["generated_text"], " a b");
        let asked = events(
            tgi(
                &server,
                json!({"inputs": "one two three", "stream": true, "parameters": {"details": true}}),
            )
            .await
            .text()
            .await
            .expect("body"),
        );
        assert_eq!(asked.len(), 2);
        assert!(asked[0]["details"].is_null());
        assert_eq!(
            asked[1]["details"],
            json!({"finish_reason": "length", "generated_tokens": 2, "seed": null, "input_length": 3})
        );
    }

    #[tokio::test]
    async fn serves_hub_inference_and_router() {
        let server = FakeHfInference::new()
            .loading(1, 0.5)
            .together_urls(["https://img/1.jpeg"])
            .start()
            .await;
        let list =
            client::get(&server.url("/api/models?inference=warm&pipeline_tag=text-generation"))
                .await
                .expect("listing");
        let v = list.json().await.expect("json");
        let ids: Vec<&str> = v
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert!(ids.contains(&"Qwen/Qwen2.5-72B-Instruct") && !ids.contains(&"someorg/cold-model"));
        assert!(!ids.contains(&"x/y"));

        let data = client::get(&server.url("/api/models/openai-community/gpt2"))
            .await
            .expect("data")
            .json()
            .await
            .expect("json");
        assert_eq!(data["config"]["model_type"], "gpt2");
        let missing = client::get(&server.url("/api/models/no/such"))
            .await
            .expect("404");
        assert_eq!(missing.status, 404);

        let body = json!({"inputs": "Hi", "parameters": {}, "stream": true});
        let url = server.url("/models/Qwen/Qwen2.5-72B-Instruct");
        let first = client::post_json(&url, &[], &body).await.expect("loading");
        assert_eq!(first.status, 503);
        assert_eq!(first.json().await.expect("json")["estimated_time"], 0.5);
        let second = client::post_json(&url, &[], &body).await.expect("stream");
        assert_eq!(second.status, 200);
        let text = second.text().await.expect("text");
        assert!(text.starts_with("data:{"), "{text}");
        assert!(text.contains(r#""special":true"#), "{text}");

        let img = client::post_json(&server.url("/models/x/y"), &[], &json!({"inputs": "a cat"}))
            .await
            .expect("image");
        assert_eq!(img.header("content-type"), Some("image/jpeg"));
        let together = client::post_json(
            &server.url("/together/v1/images/generations"),
            &[],
            &json!({"model": "m"}),
        )
        .await
        .expect("together")
        .json()
        .await
        .expect("json");
        assert_eq!(together["data"][0]["url"], "https://img/1.jpeg");
    }
}
