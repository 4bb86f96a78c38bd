//! # llmux-server
//!
//! The OpenAI-compatible HTTP gateway of [llmux](https://github.com/llmux/llmux), as a library:
//! any OpenAI SDK pointed at it (`base_url = "http://127.0.0.1:1337/v1"`) talks to every
//! provider an [`llmux::Client`] knows, with llmux's routing and fallback behind it.
//!
//! ```no_run
//! use llmux_server::{Gateway, ServerConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = llmux::Client::from_env()?;
//! let config = ServerConfig {
//!     bind: "127.0.0.1:8080".parse()?,
//!     api_key: Some("my-gateway-key".into()),
//!     ..ServerConfig::default()
//! };
//! let bound = Gateway::new(client, config).bind().await?;
//! println!("listening on http://{}/v1", bound.local_addr());
//! // send on `stop` (e.g. from a Ctrl-C handler) to shut down gracefully
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! bound
//!     .serve(async {
//!         let _ = stopped.await;
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The same gateway in front of a fake OpenAI-compatible upstream (from `llmux-testkit`), on a
//! free port of 127.0.0.1, answering one chat completion and shutting down; this one runs as a
//! doctest:
//!
//! ```
//! use llmux::ProviderConfig;
//! use llmux_server::{Gateway, ServerConfig};
//! use llmux_testkit::{client, openai::FakeOpenAi};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = FakeOpenAi::new().models(["fake-model"]).reply("Hello there!").start().await;
//! let client = llmux::Client::builder()
//!     .ignore_env()
//!     .proxy(llmux::Proxy::Direct) // the fake is on loopback
//!     .provider("openai-compat", ProviderConfig::default().with_base_url(upstream.url("/v1")))
//!     .build()?;
//! let config = ServerConfig {
//!     bind: "127.0.0.1:0".parse()?,
//!     api_key: Some("my-gateway-key".into()),
//!     ..ServerConfig::default()
//! };
//! let bound = Gateway::new(client, config).bind().await?;
//! let url = format!("http://{}/v1/chat/completions", bound.local_addr());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(bound.serve(async {
//!     let _ = stopped.await;
//! }));
//!
//! let body = json!({
//!     "model": "openai-compat:fake-model",
//!     "messages": [{"role": "user", "content": "Hi!"}],
//! });
//! let auth = [("authorization", "Bearer my-gateway-key")];
//! let answer = client::post_json(&url, &auth, &body).await?.json().await?;
//! assert_eq!(answer["object"], "chat.completion");
//! assert_eq!(answer["choices"][0]["message"]["content"], "Hello there!");
//! // without the key: 401
//! assert_eq!(client::post_json(&url, &[], &body).await?.status, 401);
//!
//! let _ = stop.send(());
//! server.await??;
//! # Ok(()) }
//! ```
//!
//! ## Endpoints
//!
//! Paths work with or without the `/v1` prefix.
//!
//! | Route | What |
//! |---|---|
//! | `POST /v1/chat/completions` | chat, streaming (SSE) or not |
//! | `POST /v1/responses` | OpenAI's Responses API over the same chat machinery, streaming or not (see below) |
//! | `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}` | a stored response; forget it |
//! | `GET /v1/models`, `GET /v1/models/{id}` | models of the providers automatic routing uses (`owned_by` = provider); `{id}` may also be an alias or `provider:model` |
//! | `POST /v1/images/generations` | image generation (`response_format` `url` or `b64_json`) |
//! | `POST /v1/embeddings` | embeddings ([`llmux::Client::embed`]; `encoding_format` `float` or `base64`) |
//! | `POST /v1/messages`, `POST /v1/messages/count_tokens` | Anthropic's Messages API (errors in Anthropic's shape; see the README) |
//! | `GET /v1/providers`, `GET /v1/providers/{name}` | provider metadata and live `health` (the detail also runs model discovery) |
//! | `POST /v1/upload_cookies` | g4f's cookie upload: multipart `files` stored in [`ServerConfig::cookies_dir`] (see the `cookies` module) |
//! | `GET /v1/usage` | usage per gateway key, model and provider (needs an admin key; see "Keys") |
//! | `GET /health` | liveness, never needs the key |
//! | `GET /ready` | readiness, never needs the key: 200 when at least one provider automatic routing uses is not open, else 503 with `reasons` |
//! | `GET /metrics` | OpenMetrics text (see below); needs the key when one is set (an admin key when [`ServerConfig::keys`] are configured: it shows per-key usage), unless [`ServerConfig::metrics_public`] |
//! | `GET /`, `GET /chat`, `GET /ui/*` | the web chat page ([`ServerConfig::ui`]); never needs the key |
//!
//! **Chat requests** take OpenAI's body: `model` (id, alias or `provider:model`), `messages`
//! (text, `image_url` parts with `data:` URIs, `input_audio` parts), `stream`,
//! `stream_options.include_usage`, `temperature`, `top_p`, `max_tokens` /
//! `max_completion_tokens`, `presence_penalty`, `frequency_penalty`, `stop` (string or array),
//! `seed`; plus the llmux/g4f extensions `provider`, `conversation` (state returned by the
//! previous answer), `api_key` (a credential for the named provider) and `web_search`. Unknown
//! fields are ignored. Remote image URLs are refused unless [`ServerConfig::allow_remote_media`].
//!
//! **Answers** are `chat.completion` / `chat.completion.chunk` objects with the extension
//! fields `provider` and (on the final chunk / the completion) `conversation`. Reasoning is
//! `reasoning_content`. Generated images, sources, audio and login prompts are rendered as
//! markdown into `content`, as g4f does. The final stream chunk carries `finish_reason` and
//! `usage` (upstream's, else estimated at 4 bytes per token); with
//! `stream_options.include_usage` the usage comes instead in a separate last chunk with empty
//! `choices`, as OpenAI sends it. Streams end with `data: [DONE]`.
//!
//! A stream's HTTP headers are held back until the first output, so failures before any
//! output get real statuses. An error after output has begun arrives as an event
//! `data: {"error":{...}}` followed by `data: [DONE]`.
//!
//! **Responses requests** (`POST /v1/responses`) take OpenAI's Responses body: `input` (a string,
//! or `message` items with `input_text` / `input_image` / `output_text` / `refusal` parts,
//! `function_call`, `function_call_output`; earlier `reasoning` items are accepted and not
//! replayed), `instructions`, function `tools`, `tool_choice`, `parallel_tool_calls`,
//! `text.format` (`json_schema`, …), `text.verbosity`, `max_output_tokens`, `temperature`,
//! `top_p`, `reasoning.effort` (the chat `reasoning_effort`, named in `x-llmux-ignored-params`
//! where the provider ignores it), `metadata`, `user`, `store`, `previous_response_id`,
//! `stream`, and the llmux extensions `provider`, `api_key`, `web_search`, `tool_emulation`.
//! Whatever cannot be honoured is a 400 naming it (`param`): other tool types, `background`,
//! `include`, `truncation: "auto"`, unknown fields or item types. The answer is a `response`
//! object with `message` (`msg_…`), `reasoning` (`rs_…`, summary text) and `function_call`
//! (`fc_…`, `call_id`) items and `usage`; a stream is the typed event sequence (`event:` /
//! `data:` with `sequence_number`, from `response.created` to `response.completed`), and a
//! failure after it began ends it with `response.failed`. Responses are kept in a bounded
//! in-memory store ([`ServerConfig::responses_store_size`], [`ServerConfig::responses_store_ttl`];
//! a [`ResponseStore`]) for `previous_response_id` and `GET`; unknown or expired ids are 404s.
//!
//! ## Response cache
//!
//! Exact-match, opt-in cache of `POST /v1/chat/completions`: a request sends
//! `x-llmux-cache: use` (`skip` opts out of a rule; another value is a 400), or a
//! [`CacheConfig::enabled_models`] rule in [`ServerConfig::cache`] names its model (`"*"`: all).
//! `Cache-Control: no-cache` skips the read but refills; `no-store` neither reads nor fills. The
//! key ([`cache_key`]) hashes the canonical JSON of the semantic fields (model, provider,
//! messages, tools, sampling, unknown fields; not `stream`, `stream_options` or `user`), so an
//! entry filled by a stream serves a plain request and the other way round; a hit replays the
//! stored chunks through the same rendering as a live answer. Only answers that ended normally
//! are stored — never errors, cut-short streams, answers with provider conversation state or a
//! login prompt, or answers to requests with their own `api_key`, cookies or `conversation`.
//! Answers of requests that used the cache carry [`CACHE_HEADER`] `hit` or `miss`. Entries live
//! in a [`CacheStore`] ([`MemoryCache`]: [`DEFAULT_CACHE_MAX_BYTES`], [`DEFAULT_CACHE_TTL`]); a
//! failing or slow (over 2 s) store is a warning, and the request is served without the cache.
//!
//! ## Errors
//!
//! Always `{"error":{"message","type","param","code"}}`:
//!
//! | Status | When |
//! |---|---|
//! | 400 | malformed JSON (`invalid_json`), a bad `x-llmux-cache` value (`invalid_header`), a wrong field (`param` names it, e.g. `messages[0].content`), an API key in the query string (`api_key_in_query`), a remote image URL, upstream refused the parameters |
//! | 401 | gateway key missing (`missing_api_key`), unknown (`invalid_api_key`) or expired (`expired_api_key`); or the **provider** needs credentials (`upstream_auth_required`: configure them or send `api_key` in the body) |
//! | 403 | the key may not use this model (`model_not_allowed`) or provider (`provider_not_allowed`, `provider_required`); `/v1/usage` without an admin key (`admin_key_required`) |
//! | 404 | unknown model (`model_not_found`, `model_not_supported`) or provider (`provider_not_found`), unknown endpoint, unknown or expired response id (`not_found`, `previous_response_not_found`) |
//! | 413 | body over [`ServerConfig::max_body_bytes`] |
//! | 429 | the gateway key's limit (`rate_limit_exceeded`, `type` `requests` or `tokens`; see "Keys"), or the upstream's rate limit; `Retry-After` |
//! | 502 | upstream failure; the message names every provider tried |
//! | 503 | model loading upstream (`Retry-After` when known) |
//! | 504 | upstream timeout |
//!
//! ## Security
//!
//! The gateway key ([`ServerConfig::api_key`]) is read from `Authorization: Bearer`,
//! `x-api-key` or `g4f-api-key`, compared in constant time, and **never forwarded upstream**
//! (unlike g4f, which passes a Bearer credential on as the provider key). Only a body `api_key`
//! reaches a provider, and only one the caller named explicitly. Keys in the URL query are
//! refused. Logs never contain headers, bodies or query strings. Request heads over 64 KiB get
//! a 431, bodies over [`ServerConfig::max_body_bytes`] a 413; the head must arrive within
//! [`ServerConfig::header_read_timeout`] and the body within 60 s.
//!
//! ## Keys
//!
//! [`ServerConfig::keys`] (the CLI's `[[keys]]`) gives each team member or app a key of its own
//! ([`KeyConfig`]): the key or its SHA-256 ([`hash_key`], `llmux keys hash`), the models
//! (exact ids, or prefixes ending in `*`) and providers it may use, `rpm` (requests per
//! minute), `tpm` (tokens per minute), `concurrency` (requests in flight; a stream counts until
//! it ends), `expires` and `admin`. [`ServerConfig::api_key`] still works: it is an unlimited
//! admin key named `default`. Keys are matched over SHA-256 digests in constant time and never
//! logged; logs, metrics and usage name a key by its `name`.
//!
//! - Unknown or expired key: 401 (`invalid_api_key`, `expired_api_key`). A model or provider
//!   the key may not use: 403 with `param` (`model_not_allowed`, `provider_not_allowed`; a key
//!   limited to several providers must name one, else `provider_required`; a key limited to one
//!   gets that one).
//! - Limits apply to the model routes (chat, responses, messages, images, embeddings). In one
//!   process: `rpm` is a GCRA limiter (`governor`: a burst of `rpm` requests, then one every
//!   `60 s / rpm`), `tpm` a one-minute window charged with each answer's tokens after it (a
//!   request is refused once the window's tokens reached `tpm`), `concurrency` a semaphore. With
//!   [`ServerConfig::redis`] the replicas share them: one atomic Lua script per request (fixed
//!   one-minute windows on Redis's clock; concurrency leases that expire after 15 minutes if a
//!   replica dies holding them).
//! - A refusal is a 429 `rate_limit_exceeded` (`type` `requests` or `tokens`, as OpenAI) with
//!   `Retry-After` (seconds). Answers of limited keys carry OpenAI's
//!   `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset as `1m30s`, `6s`, `20ms`).
//! - Usage (requests, errors, input and output tokens per key, model and provider) is counted
//!   when a request ends, in `/metrics` (`llmux_key_*_total`) and in `GET /v1/usage` (admin keys
//!   only): `{"object":"list","data":[{"key","model","provider","requests","errors",
//!   "input_tokens","output_tokens"}]}`, summed over every replica when Redis is configured.
//!
//! ## Replicas
//!
//! With [`ServerConfig::redis`] (`llmux serve --redis redis://HOST:PORT/DB`), replicas behind a
//! load balancer share the key limits, the usage counts and the Responses store
//! (`previous_response_id` and `GET /v1/responses/{id}` work on whichever replica answers).
//! Every Redis command has a deadline ([`RedisConfig::timeout`], default 500 ms) and the
//! connection comes back by itself. While Redis is down:
//!
//! - limits fail open (requests of limited keys pass unchecked, a warning is logged) or, with
//!   [`RedisConfig::limits_fail_open`] `false`, closed (503 `rate_limiter_unavailable`);
//! - the Responses store answers 503 `store_unavailable` (a stream that cannot be stored ends
//!   with `response.failed`); `GET /v1/usage` answers 503 `usage_unavailable`; usage and token
//!   counts of that time are not kept;
//! - chat completions and everything that does not need the shared state work as usual.
//!
//! ## Overhead header
//!
//! Chat and image responses carry `x-llmux-overhead-ms`: the gateway's own wall time on the
//! request, in milliseconds (3 decimals). It is the time from the request head's arrival to the
//! start of the body read, plus the time from the end of the body read until the request is
//! handed to [`llmux::Client::chat`] (routing, authentication, JSON parsing, validation), plus,
//! for non-streaming answers, the time from the upstream's last chunk to the finished response
//! body (serialisation). It excludes the time the client takes to send the body and everything
//! after the hand-off to the llmux client (provider resolution, upstream I/O, and the per-chunk
//! relay of streams, whose headers leave before the stream ends).
//!
//! ## Health
//!
//! Each provider object of `/v1/providers` carries `health`: `status` (`ok`, `degraded`, `down`,
//! `rate_limited`, or `unknown` before any attempt), `state` (`closed`, `half_open`, `open`),
//! `consecutive_failures`, `last_error` (an error code), `last_success_at` (Unix seconds),
//! `ttft_ms` and `duration_ms` (moving averages), `retry_in_secs` (while open) and `models`
//! (the same per model, see [`llmux::ModelHealth`]).
//!
//! ## Metrics
//!
//! `GET /metrics`: `llmux_http_requests_total{route,status}`,
//! `llmux_attempts_total{provider,model,outcome}`, `llmux_fallbacks_total{provider}`,
//! `llmux_errors_total{code}`, `llmux_time_to_first_token_seconds{provider}` and
//! `llmux_attempt_duration_seconds{provider}` (histograms),
//! `llmux_tokens_total{provider,model,direction}`, `llmux_open_streams`,
//! `llmux_breaker_state{provider,model}` (0 closed, 1 half-open, 2 open),
//! `llmux_cache_requests_total{result}` (`hit`, `miss`). Counting costs a few
//! atomic adds per request and attempt, nothing per chunk; [`ServerConfig::metrics`] turns it off.
//!
//! ## Logging
//!
//! Every response carries [`REQUEST_ID_HEADER`] (`x-request-id`): the client's own when it is a
//! visible-ASCII token of at most 128 bytes, else a generated `req_…`. Every log line of a request
//! runs in a `request` span with that `request_id`.
//!
//! One `tracing` event per request at info level, target `llmux_server::access`: `request_id`,
//! method, `route`, `model_asked`, `provider` and `model` used, `attempts`, `status`, `ttft_ms`,
//! `duration_ms`, `prompt_tokens`, `completion_tokens`, `overhead_ms`, `error`, `outcome`
//! (streams log when they end, including `client_closed` when the client went away — which also
//! drops the upstream call).
//!
//! With the cargo feature `otel`, [`otel::layer`] exports the `request` spans (`request_id`,
//! `route`, `status`, `ttft_ms`) and the facade's `attempt` spans (`provider`, `model`, `probe`,
//! `ttft_ms`, `error`; children of the request) over OTLP/HTTP.

mod answer;
mod body;
mod breakers;
mod cache;
mod config;
mod cookies;
mod embeddings;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod limits;
mod log;
mod messages;
mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
mod redis_client;
mod render;
mod responses;
mod routes;
mod server;
mod sse;
mod status;
mod ui;
mod usage;
mod wire;

pub use cache::{
    CACHE_HEADER, CacheConfig, CacheError, CacheFuture, CacheStore, DEFAULT_CACHE_MAX_BYTES,
    DEFAULT_CACHE_TTL, KEY_PREFIX as CACHE_KEY_PREFIX, MemoryCache, cache_key,
};
pub use config::{
    DEFAULT_BIND, DEFAULT_MAX_BODY_BYTES, DEFAULT_RESPONSES_STORE_SIZE,
    DEFAULT_RESPONSES_STORE_TTL, ServerConfig,
};
pub use keys::{KeyConfig, KeySecret, hash_key};
pub use log::REQUEST_ID_HEADER;
pub use redis_client::RedisConfig;
pub use responses::store::{
    DEFAULT_MAX_BYTES as DEFAULT_RESPONSES_STORE_MAX_BYTES, MemoryStore, ResponseStore, StoreError,
    StoreFuture, StoredResponse,
};
pub use routes::OVERHEAD_HEADER;
pub use server::{BoundGateway, Gateway};
