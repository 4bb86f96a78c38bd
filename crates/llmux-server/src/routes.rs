//! Routing and the handlers of every endpoint.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use llmux::{Chunk, Error, MediaData, ModelKind};
use llmux_core::media;
use serde::Serialize;

use crate::answer::{Answer, Piece};
use crate::body::{self, Body};
use crate::config::ServerConfig;
use crate::error::{ApiError, from_llmux};
use crate::keys::{self, Caller, Keyring};
use crate::limits::Limits;
use crate::log::{Access, REQUEST_ID_HEADER, RequestIds, ms};
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use crate::sse::SseBody;
use crate::status::{self, ProviderHealth};
use crate::usage::Usage;
use crate::wire::{self, ImageRequest, ResponseFormat};
use llmux_openai::answer::{AnswerMessage, ChatCompletion, Choice};

/// Longest time a client may take to send a request body.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Response header with the gateway's own time on the request (see the crate docs).
pub const OVERHEAD_HEADER: &str = "x-llmux-overhead-ms";

pub(crate) const SSE: HeaderValue = HeaderValue::from_static("text/event-stream; charset=utf-8");
pub(crate) const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
pub(crate) const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
pub(crate) const NO: HeaderValue = HeaderValue::from_static("no");
const STAR: HeaderValue = HeaderValue::from_static("*");
const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, DELETE, OPTIONS");
const DEFAULT_ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(
    "authorization, content-type, x-api-key, g4f-api-key, openai-organization, openai-project, anthropic-version, anthropic-beta",
);
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static(
    "x-llmux-overhead-ms, retry-after, x-llmux-ignored-params, x-llmux-usage, x-request-id, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, x-llmux-cache",
);
const MAX_AGE: HeaderValue = HeaderValue::from_static("86400");

/// Everything a request handler needs.
pub(crate) struct State {
    pub client: llmux::Client,
    pub config: ServerConfig,
    /// The gateway keys (empty: no authentication).
    pub keys: Keyring,
    /// Per-key limits.
    pub limits: Limits,
    /// Per-key usage.
    pub usage: Arc<Usage>,
    /// The shared Redis, when configured.
    pub redis: Option<RedisClient>,
    /// Where `/v1/responses` keeps responses (`None`: storage is off).
    pub responses: Option<Arc<dyn crate::responses::store::ResponseStore>>,
    /// Metrics, unless [`ServerConfig::metrics`] is off.
    pub metrics: Option<Arc<Metrics>>,
    /// The response cache of chat completions (`None`: off).
    cache: Option<crate::cache::Cache>,
    ids: RequestIds,
}

impl State {
    pub fn new(client: llmux::Client, config: ServerConfig) -> Self {
        let keys = Keyring::new(config.api_key.as_ref(), &config.keys);
        let redis = config
            .redis
            .as_ref()
            .and_then(|c| match RedisClient::new(c) {
                Ok(r) => Some(r),
                Err(e) => {
                    // RedisConfig::new checked the URL: this cannot happen for a config built by it
                    tracing::error!(error = %e, "Redis unusable: all state stays in this process");
                    None
                }
            });
        let fail_open = config.redis.as_ref().is_none_or(|c| c.limits_fail_open);
        let limits = Limits::new(keys.entries(), redis.clone(), fail_open);
        let responses = config.responses_store(redis.as_ref());
        let metrics = config.metrics.then(Metrics::new);
        let cache = crate::cache::Cache::new(config.cache.as_ref(), redis.as_ref());
        if let Some(m) = &metrics {
            if !client.observe(m.clone()) {
                tracing::warn!(
                    "this llmux client already reports to another observer: no attempt metrics"
                );
            }
        }
        Self {
            client,
            config,
            keys,
            limits,
            usage: Arc::new(Usage::new(redis.clone())),
            redis,
            responses,
            metrics,
            cache,
            ids: RequestIds::new(),
        }
    }

    /// Checks that the caller may use `model` through `provider` (see [`keys::check_access`]),
    /// looking through a `provider:model` prefix.
    pub(crate) fn admit(
        &self,
        caller: &Caller,
        provider: &mut Option<String>,
        model: &str,
    ) -> Result<(), ApiError> {
        if caller.is_none() {
            return Ok(());
        }
        let prefixed = match model.split_once(':') {
            Some((p, m)) if provider.is_none() && self.client.provider(p).is_some() => {
                Some((p.to_owned(), m))
            }
            _ => None,
        };
        match prefixed {
            Some((p, m)) => keys::check_access(caller, &mut Some(p), m),
            None => keys::check_access(caller, provider, model),
        }
    }

    /// Applies the configured default provider to a request that names none, then checks that
    /// the caller's key may use its model and provider.
    pub(crate) fn default_provider(
        &self,
        caller: &Caller,
        req: &mut llmux::ChatRequest,
    ) -> Result<(), ApiError> {
        self.default_provider_for(&mut req.provider, &req.model);
        self.admit(caller, &mut req.provider, &req.model)
    }

    /// The configured default provider for a request naming `provider` and `model`.
    pub(crate) fn default_provider_for(&self, provider: &mut Option<String>, model: &str) {
        let Some(default) = &self.config.default_provider else {
            return;
        };
        if provider.is_some() {
            return;
        }
        let prefixed = model
            .split_once(':')
            .is_some_and(|(p, _)| self.client.provider(p).is_some());
        if !prefixed {
            *provider = Some(default.clone());
        }
    }
}

enum Route {
    Health,
    Ready,
    Metrics,
    Chat,
    Images,
    Models,
    Model(String),
    Providers,
    Provider(String),
    Responses,
    Response(String),
    UploadCookies,
    Messages,
    CountTokens,
    Embeddings,
    Usage,
}

impl Route {
    fn label(&self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Ready => "/ready",
            Route::Metrics => "/metrics",
            Route::Chat => "/v1/chat/completions",
            Route::Images => "/v1/images/generations",
            Route::Models => "/v1/models",
            Route::Model(_) => "/v1/models/{id}",
            Route::Providers => "/v1/providers",
            Route::Provider(_) => "/v1/providers/{name}",
            Route::Responses => "/v1/responses",
            Route::Response(_) => "/v1/responses/{id}",
            Route::UploadCookies => "/v1/upload_cookies",
            Route::Messages => "/v1/messages",
            Route::CountTokens => "/v1/messages/count_tokens",
            Route::Embeddings => "/v1/embeddings",
            Route::Usage => "/v1/usage",
        }
    }

    /// Whether the key's limits apply (the routes that call a model).
    fn limited(&self) -> bool {
        matches!(
            self,
            Route::Chat | Route::Images | Route::Responses | Route::Messages | Route::Embeddings
        )
    }

    /// Whether `m` is one of the route's methods.
    fn allows(&self, m: &Method) -> bool {
        *m == self.method()
            || (*m == Method::HEAD && self.method() == Method::GET)
            || (matches!(self, Route::Response(_)) && *m == Method::DELETE)
    }

    fn method(&self) -> Method {
        match self {
            Route::Chat
            | Route::Images
            | Route::Responses
            | Route::UploadCookies
            | Route::Messages
            | Route::CountTokens
            | Route::Embeddings => Method::POST,
            _ => Method::GET,
        }
    }

    /// An error response in this route's API shape (Anthropic's on the Messages routes).
    fn error(&self, e: &ApiError) -> Response<Body> {
        match self {
            Route::Messages | Route::CountTokens => crate::messages::error_response(e),
            _ => body::error(e),
        }
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Paths are accepted with or without the `/v1` prefix.
fn route(path: &str) -> Option<Route> {
    let p = match path.strip_prefix("/v1") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    };
    let p = p.trim_end_matches('/');
    Some(match p {
        "/health" | "/healthz" => Route::Health,
        "/ready" | "/readyz" => Route::Ready,
        "/metrics" => Route::Metrics,
        "/chat/completions" => Route::Chat,
        "/images/generations" | "/images/generate" | "/media/generate" => Route::Images,
        "/models" => Route::Models,
        "/providers" => Route::Providers,
        "/responses" => Route::Responses,
        "/upload_cookies" => Route::UploadCookies,
        "/messages" => Route::Messages,
        "/messages/count_tokens" => Route::CountTokens,
        "/embeddings" => Route::Embeddings,
        "/usage" => Route::Usage,
        _ => {
            if let Some(id) = p.strip_prefix("/models/").filter(|s| !s.is_empty()) {
                Route::Model(decode(id))
            } else if let Some(id) = p
                .strip_prefix("/responses/")
                .filter(|s| !s.is_empty() && !s.contains('/'))
            {
                Route::Response(decode(id))
            } else if let Some(name) = p
                .strip_prefix("/providers/")
                .filter(|s| !s.is_empty() && !s.contains('/'))
            {
                Route::Provider(decode(name))
            } else {
                return None;
            }
        }
    })
}

/// Query parameters that look like credentials: refused, never accepted.
fn query_has_key(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair
            .split('=')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .replace('-', "_");
        matches!(
            name.as_str(),
            "key"
                | "api_key"
                | "apikey"
                | "g4f_api_key"
                | "x_api_key"
                | "access_token"
                | "token"
                | "auth"
                | "authorization"
        )
    })
}

/// Handles one request (never fails: errors become OpenAI-shaped responses).
pub(crate) async fn handle<B>(state: Arc<State>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let start = Instant::now();
    let cors = state.config.cors;
    let id = state.ids.for_request(req.headers());
    let mut resp = if req.method() == Method::OPTIONS && cors {
        preflight(req.headers())
    } else {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "request",
            request_id = id.to_str().unwrap_or_default(),
            route = tracing::field::Empty,
            status = tracing::field::Empty,
            ttft_ms = tracing::field::Empty,
        );
        dispatch(&state, req, start, id.clone())
            .instrument(span)
            .await
    };
    resp.headers_mut().insert(REQUEST_ID_HEADER, id);
    if cors {
        resp.headers_mut()
            .insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, STAR);
        resp.headers_mut()
            .insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    }
    resp
}

fn preflight(headers: &HeaderMap) -> Response<Body> {
    let mut r = Response::new(Body::Full(None));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
    let allow = headers
        .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(DEFAULT_ALLOW_HEADERS);
    h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
    h.insert(http::header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    r
}

async fn dispatch<B>(
    state: &State,
    req: Request<B>,
    start: Instant,
    id: HeaderValue,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    if let Some(page) = crate::ui::respond(&state.config, &method, req.uri().path(), req.headers())
    {
        return page;
    }
    let route = route(req.uri().path());
    let mut access = Access::new(
        method.clone(),
        route.as_ref().map_or("(unknown)", Route::label),
        start,
        id,
    );
    let shape = |e: &ApiError| {
        route
            .as_ref()
            .map_or_else(|| body::error(e), |r| r.error(e))
    };
    access.metrics.clone_from(&state.metrics);
    access.usage = Some(state.usage.clone());
    let resp = match route {
        _ if req.uri().query().is_some_and(query_has_key) => shape(&ApiError::bad_request(
            "api_key_in_query",
            "API keys are not accepted in the URL (URLs end up in logs); send `Authorization: Bearer <key>`",
        )),
        None => body::error(&ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("unknown endpoint {method} {}", req.uri().path()),
        )),
        Some(r) if !r.allows(&method) => {
            let mut resp = r.error(&ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                format!("{} expects {}", r.label(), r.method()),
            ));
            if let Ok(v) = HeaderValue::from_str(r.method().as_str()) {
                resp.headers_mut().insert(ALLOW, v);
            }
            resp
        }
        Some(Route::Health) => health(),
        Some(Route::Ready) => status::ready(&state.client),
        Some(Route::Metrics) if state.config.metrics_public => metrics(state),
        Some(r) => match state.keys.identify(req.headers()) {
            Err(e) => r.error(&e),
            Ok(caller) => {
                access.caller = caller;
                serve_limited(state, r, req, &method, &mut access).await
            }
        },
    };
    if !resp.body().is_stream() {
        if !resp.status().is_success() && access.error_code.is_none() {
            access.error_code = resp.extensions().get::<body::ErrorCode>().map(|c| c.0);
        }
        access.log(
            resp.status().as_u16(),
            if resp.status().is_success() {
                "ok"
            } else {
                "error"
            },
        );
    }
    resp
}

/// Admits the request under its key's limits (on the model routes), serves it, and adds the
/// `x-ratelimit-*` headers.
async fn serve_limited<B>(
    state: &State,
    r: Route,
    req: Request<B>,
    method: &Method,
    access: &mut Access,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    access.model_route = r.limited();
    let entry = access.caller.clone().filter(|_| r.limited());
    let Some(entry) = entry else {
        return serve(state, r, req, method, access).await;
    };
    match state.limits.acquire(&entry).await {
        Err(refused) => {
            let mut resp = r.error(&refused.error);
            refused.info.write(resp.headers_mut());
            resp
        }
        Ok(grant) => {
            let grant = Arc::new(grant);
            access.grant = Some(grant.clone());
            let mut resp = serve(state, r, req, method, access).await;
            grant.info.write(resp.headers_mut());
            resp
        }
    }
}

/// Runs the handler of an authorised request.
async fn serve<B>(
    state: &State,
    r: Route,
    req: Request<B>,
    method: &Method,
    access: &mut Access,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match r {
        // boxed: hyper keeps room for the handler future for the whole connection, and
        // a streamed answer outlives the handler (a few KiB less per open stream)
        Route::Chat => Box::pin(chat(state, req, access)).await,
        Route::Images => images(state, req, access).await,
        Route::Models => models(state).await,
        Route::Model(id) => model(state, &id).await,
        Route::Providers => providers(state),
        Route::Provider(name) => provider(state, &name).await,
        Route::Responses => Box::pin(crate::responses::create(state, req, access)).await,
        Route::Response(id) if *method == Method::DELETE => {
            crate::responses::delete(state, &id).await
        }
        Route::Response(id) => crate::responses::get(state, &id).await,
        Route::UploadCookies => crate::cookies::upload(state, req).await,
        Route::Messages => Box::pin(crate::messages::messages(state, req, access)).await,
        Route::CountTokens => crate::messages::count_tokens(state, req, access).await,
        Route::Embeddings => crate::embeddings::embeddings(state, req, access).await,
        Route::Usage => crate::usage::respond(&state.usage, &access.caller).await,
        Route::Health => health(),
        Route::Ready => status::ready(&state.client),
        // per-key usage is in the metrics: like `/v1/usage`, they need an admin key
        Route::Metrics if access.caller.as_ref().is_some_and(|c| !c.config.admin) => {
            body::error(&crate::usage::admin_required("GET /metrics"))
        }
        Route::Metrics => metrics(state),
    }
}

fn health() -> Response<Body> {
    body::json_bytes(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// `GET /metrics` (404 when metrics are off).
fn metrics(state: &State) -> Response<Body> {
    let Some(m) = &state.metrics else {
        return body::error(&ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "metrics_disabled",
            "metrics are turned off on this gateway",
        ));
    };
    let mut resp = Response::new(Body::Full(Some(Bytes::from(m.encode(&state.client)))));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

/// Reads the body within the size limit and [`BODY_READ_TIMEOUT`].
pub(crate) async fn read_body<B>(req: Request<B>, limit: usize) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "body_too_large",
            format!("the request body is larger than this gateway's limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), limit);
    match tokio::time::timeout(BODY_READ_TIMEOUT, body.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "body_timeout",
            "the request body did not arrive in time",
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request(
            "body_read",
            format!("could not read the request body: {e}"),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

pub(crate) fn set_overhead(resp: &mut Response<Body>, d: Duration) {
    let mut buf = [0u8; 24];
    let s = {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        let _ = write!(cur, "{:.3}", ms(d));
        let n = usize::try_from(cur.position()).unwrap_or(0);
        &buf[..n]
    };
    if let Ok(v) = HeaderValue::from_bytes(s) {
        resp.headers_mut().insert(OVERHEAD_HEADER, v);
    }
}

pub(crate) fn error_with_overhead(e: &ApiError, overhead: Duration) -> Response<Body> {
    let mut r = body::error(e);
    set_overhead(&mut r, overhead);
    r
}

/// Response header naming the request fields the answering provider ignores.
pub const IGNORED_PARAMS_HEADER: &str = "x-llmux-ignored-params";
/// Response header set to `estimated` when the upstream reported no usage and llmux estimated it.
pub const USAGE_HEADER: &str = "x-llmux-usage";

/// Sets [`IGNORED_PARAMS_HEADER`] when the provider ignores fields.
pub(crate) fn set_ignored(resp: &mut Response<Body>, answer: &Answer) {
    if let Some(v) = answer.ignored_header() {
        resp.headers_mut().insert(IGNORED_PARAMS_HEADER, v);
    }
}

/// The headers of a finished, non-streamed answer: `x-llmux-ignored-params`, and
/// `x-llmux-usage: estimated` when the upstream reported no usage.
pub(crate) fn finish_headers(resp: &mut Response<Body>, answer: &Answer) {
    set_ignored(resp, answer);
    if answer.upstream_usage().is_none() {
        resp.headers_mut()
            .insert(USAGE_HEADER, HeaderValue::from_static("estimated"));
    }
}

/// The `chat.completion` object of a finished answer.
fn completion_json(answer: &mut Answer, content: &str, reasoning: &str) -> Result<Vec<u8>, Error> {
    let calls = answer.tool_calls()?;
    let estimated;
    let usage = match answer.upstream_usage() {
        Some(u) => u,
        None => {
            estimated = answer.estimated_usage();
            &estimated
        }
    };
    let mut top = answer.extra.response.clone();
    top.insert("provider".into(), answer.provider.clone().into());
    if let Some(c) = &answer.conversation {
        top.insert("conversation".into(), c.0.clone());
    }
    let mut choice_extra = answer.extra.choice.clone();
    let logprobs = choice_extra
        .remove("logprobs")
        .unwrap_or(serde_json::Value::Null);
    let refusal = answer
        .extra
        .message
        .get("refusal")
        .is_some_and(|r| !r.is_null());
    let content = Some(content).filter(|c| !c.is_empty() || (calls.is_empty() && !refusal));
    let body = ChatCompletion {
        id: &answer.id,
        object: "chat.completion",
        created: answer.created,
        model: &answer.model,
        choices: [Choice {
            index: 0,
            message: AnswerMessage {
                role: "assistant",
                content,
                reasoning_content: Some(reasoning).filter(|r| !r.is_empty()),
                tool_calls: &calls,
                extra: &answer.extra.message,
            },
            logprobs: &logprobs,
            finish_reason: answer.finish_reason(),
            extra: &choice_extra,
        }],
        usage: Some(usage),
        extra: &top,
    };
    serde_json::to_vec(&body).map_err(|e| Error::Io(format!("cannot encode the answer: {e}")))
}

/// Fails with the mapped error, logging it on `access`.
fn chat_error(
    e: &Error,
    answer: &Answer,
    access: &mut Access,
    overhead: Duration,
) -> Response<Body> {
    access.take_answer(answer);
    access.overhead = Some(overhead);
    let api = from_llmux(e);
    access.error_code = Some(api.code);
    error_with_overhead(&api, overhead)
}

/// `POST /v1/chat/completions`.
async fn chat<B>(state: &State, req: Request<B>, access: &mut Access) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let before_body = access.start.elapsed();
    let (creq, opts, ask, parse_start) = match read_chat(state, req, access, before_body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let mut answer = Answer::new(
        creq.model.clone(),
        crate::answer::estimate_prompt_tokens(&creq),
    );
    let plan = state
        .cache
        .as_ref()
        .and_then(|c| Some((c, c.plan(ask, &creq)?)));
    let overhead = before_body + parse_start.elapsed();
    access.overhead = Some(overhead);
    let (stream, cached) = match plan {
        None => (state.client.chat(creq), None),
        Some((cache, plan)) => {
            let metrics = state.metrics.as_deref();
            let (s, status) = cache.answer(plan, &state.client, creq, metrics).await;
            access.cache = Some(status);
            (s, Some(status))
        }
    };
    // `x-llmux-cache: hit|miss` on whatever this request answers once the cache was asked
    let tag = |mut resp: Response<Body>| {
        if let Some(c) = cached {
            resp.headers_mut()
                .insert(crate::cache::CACHE_HEADER, c.header());
        }
        resp
    };

    if opts.stream {
        let include_usage = opts.include_usage;
        return tag(chat_sse(stream, answer, include_usage, access, overhead).await);
    }
    tag(chat_whole(stream, &mut answer, access, overhead).await)
}

/// The steps of [`chat`] before the answer: the cache header, the body, its parse and the key's
/// default provider. Returns the request, its gateway options, the cache ask and when parsing
/// began; an error is the finished response.
async fn read_chat<B>(
    state: &State,
    req: Request<B>,
    access: &mut Access,
    before_body: Duration,
) -> Result<
    (
        llmux::ChatRequest,
        llmux_openai::convert::GatewayOptions,
        crate::cache::Ask,
        Instant,
    ),
    Response<Body>,
>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let ask = match crate::cache::Ask::from_headers(req.headers()) {
        Ok(a) => a,
        Err(e) => return Err(error_with_overhead(&e, before_body)),
    };
    let raw = match read_body(req, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return Err(error_with_overhead(&e, before_body)),
    };
    let parse_start = Instant::now();
    let parsed = wire::chat_request(&raw, state.config.allow_remote_media);
    drop(raw);
    let (mut creq, opts) = match parsed {
        Ok(x) => x,
        Err(e) => return Err(error_with_overhead(&e, before_body + parse_start.elapsed())),
    };
    access.asked.clone_from(&creq.model);
    access.model.clone_from(&creq.model);
    if let Err(e) = state.default_provider(&access.caller, &mut creq) {
        return Err(error_with_overhead(&e, before_body + parse_start.elapsed()));
    }
    Ok((creq, opts, ask, parse_start))
}

/// A streamed chat completion: the SSE response, once the first visible chunk is there.
async fn chat_sse(
    mut stream: llmux::ChatStream,
    mut answer: Answer,
    include_usage: bool,
    access: &mut Access,
    overhead: Duration,
) -> Response<Body> {
    // hold the headers until the first visible chunk, so that errors before any output
    // (unknown model, rate limits, upstream down) get an honest HTTP status
    let first = loop {
        match stream.next().await {
            Some(Ok(chunk)) if Answer::is_visible(&chunk) || answer.starts_next_event(&chunk) => {
                break Some(chunk);
            }
            Some(Ok(chunk)) => {
                let _ = answer.take(chunk);
            }
            Some(Err(e)) => return chat_error(&e, &answer, access, overhead),
            None => break None,
        }
    };
    let ignored = answer.ignored_header();
    let sse = SseBody::new(stream, first, answer, include_usage, access.clone());
    let mut resp = Response::new(Body::Sse(Box::new(sse)));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, SSE);
    h.insert(CACHE_CONTROL, NO_CACHE);
    h.insert(X_ACCEL_BUFFERING, NO);
    if let Some(v) = ignored {
        h.insert(IGNORED_PARAMS_HEADER, v);
    }
    set_overhead(&mut resp, overhead);
    resp
}

/// A whole chat completion: reads the stream to its end and answers one `chat.completion`.
async fn chat_whole(
    mut stream: llmux::ChatStream,
    answer: &mut Answer,
    access: &mut Access,
    overhead: Duration,
) -> Response<Body> {
    let mut content = String::new();
    let mut reasoning = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => match answer.take(chunk) {
                Piece::Content(t) => {
                    access.first_token();
                    content.push_str(&t);
                }
                Piece::Reasoning(t) => {
                    access.first_token();
                    reasoning.push_str(&t);
                }
                Piece::Tool(_) | Piece::ExtraOnly => access.first_token(),
                Piece::Nothing => {}
            },
            Err(e) => return chat_error(&e, answer, access, overhead),
        }
    }
    drop(stream);
    let build_start = Instant::now();
    let bytes = match completion_json(answer, &content, &reasoning) {
        Ok(b) => b,
        Err(e) => return chat_error(&e, answer, access, overhead),
    };
    let mut resp = body::json_bytes(StatusCode::OK, bytes);
    finish_headers(&mut resp, answer);
    access.take_answer(answer);
    access.overhead = Some(overhead + build_start.elapsed());
    set_overhead(&mut resp, overhead + build_start.elapsed());
    resp
}

/// `POST /v1/images/generations`.
async fn images<B>(state: &State, req: Request<B>, access: &mut Access) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let before_body = access.start.elapsed();
    let (creq, format, parse_start) = match read_images(state, req, access, before_body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let overhead = before_body + parse_start.elapsed();
    let model = creq.model.clone();
    let stream = state.client.chat(creq);
    let (model, provider, found) = match collect_images(stream, model, access, overhead).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    access.model.clone_from(&model);
    access.provider.clone_from(&provider);
    if found.is_empty() {
        return error_with_overhead(
            &ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "no_media",
                format!("{provider}: the provider returned no image"),
            ),
            overhead,
        );
    }
    let data = match image_items(state, format, found, &provider, overhead).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut resp = body::json(
        StatusCode::OK,
        &ImagesResponse {
            created,
            data,
            model: &model,
            provider: &provider,
        },
    );
    set_overhead(&mut resp, overhead);
    resp
}

/// The steps of [`images`] before the call: the body, its parse and the key's default provider.
/// Returns the request, the asked response format and when parsing began; an error is the
/// finished response.
async fn read_images<B>(
    state: &State,
    req: Request<B>,
    access: &mut Access,
    before_body: Duration,
) -> Result<(llmux::ChatRequest, ResponseFormat, Instant), Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let raw = match read_body(req, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return Err(error_with_overhead(&e, before_body)),
    };
    let parse_start = Instant::now();
    let (mut creq, format) =
        match wire::parse::<ImageRequest>(&raw).and_then(ImageRequest::into_request) {
            Ok(x) => x,
            Err(e) => return Err(error_with_overhead(&e, before_body + parse_start.elapsed())),
        };
    access.asked.clone_from(&creq.model);
    access.model.clone_from(&creq.model);
    if let Err(e) = state.default_provider(&access.caller, &mut creq) {
        return Err(error_with_overhead(&e, before_body + parse_start.elapsed()));
    }
    Ok((creq, format, parse_start))
}

/// Reads an image call's stream to its end: the answering model (`model` until a provider names
/// its own), the provider and the images. An error is the finished response.
async fn collect_images(
    mut stream: llmux::ChatStream,
    mut model: String,
    access: &mut Access,
    overhead: Duration,
) -> Result<(String, String, Vec<llmux_core::Image>), Response<Body>> {
    let mut provider = String::new();
    let mut found = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(Chunk::Images(imgs)) => {
                access.first_token();
                found.extend(imgs);
            }
            Ok(Chunk::Provider(p)) => {
                provider = p.provider;
                if !p.model.is_empty() {
                    model = p.model;
                }
            }
            Ok(_) => {}
            Err(e) => {
                access.provider.clone_from(&provider);
                return Err(error_with_overhead(&from_llmux(&e), overhead));
            }
        }
    }
    drop(stream);
    Ok((model, provider, found))
}

/// The images in the asked response format (URLs kept or turned into data URIs, bytes encoded,
/// URLs downloaded through `provider` for `b64_json`), in order. An error is the finished
/// response.
async fn image_items(
    state: &State,
    format: ResponseFormat,
    found: Vec<llmux_core::Image>,
    provider: &str,
    overhead: Duration,
) -> Result<Vec<ImageItem>, Response<Body>> {
    let items = found.into_iter().map(|img| async move {
        let (url, b64_json) = match (format, img.data) {
            (ResponseFormat::Url, MediaData::Url(u)) => (Some(u), None),
            (ResponseFormat::Url, MediaData::Bytes { mime, data }) => {
                (Some(media::to_data_uri(&mime, &data)), None)
            }
            (ResponseFormat::B64Json, MediaData::Bytes { data, .. }) => {
                (None, Some(media::b64_encode(&data)))
            }
            (ResponseFormat::B64Json, MediaData::Url(u)) => {
                let d = state.client.download(provider, &u).await?;
                (None, Some(media::b64_encode(&d.data)))
            }
        };
        Ok::<ImageItem, Error>(ImageItem {
            url,
            b64_json,
            revised_prompt: img.alt,
        })
    });
    let mut data = Vec::new();
    for r in futures_util::future::join_all(items).await {
        match r {
            Ok(v) => data.push(v),
            Err(e) => return Err(error_with_overhead(&from_llmux(&e), overhead)),
        }
    }
    Ok(data)
}

#[derive(Serialize)]
struct ImageItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64_json: Option<String>,
    revised_prompt: String,
}

#[derive(Serialize)]
struct ImagesResponse<'a> {
    created: u64,
    data: Vec<ImageItem>,
    model: &'a str,
    provider: &'a str,
}

/// An OpenAI list object.
#[derive(Serialize)]
struct List<T> {
    object: &'static str,
    data: Vec<T>,
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
    image: bool,
    vision: bool,
    audio: bool,
}

/// `GET /v1/models`: every model of the providers automatic routing uses, each id once
/// (`owned_by` = the first provider serving it, in priority order).
async fn models(state: &State) -> Response<Body> {
    let list = state.client.models().await;
    let mut seen = HashSet::new();
    let data: Vec<ModelObject<'_>> = list
        .iter()
        .filter(|m| m.enabled && seen.insert(m.id.as_str()))
        .map(|m| ModelObject {
            id: &m.id,
            object: "model",
            created: 0,
            owned_by: &m.provider,
            image: m.kind == ModelKind::Image,
            vision: m.vision,
            audio: m.audio,
        })
        .collect();
    body::json(
        StatusCode::OK,
        &List {
            object: "list",
            data,
        },
    )
}

/// `GET /v1/models/{id}`: a model id, alias, or `provider:model`.
async fn model(state: &State, id: &str) -> Response<Body> {
    let not_found = || {
        body::error(
            &ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("the model `{id}` does not exist"),
            )
            .with_param("model"),
        )
    };
    let found = |id: &str, owner: &str, kind: ModelKind, vision: bool, audio: bool| {
        body::json(
            StatusCode::OK,
            &ModelObject {
                id,
                object: "model",
                created: 0,
                owned_by: owner,
                image: kind == ModelKind::Image,
                vision,
                audio,
            },
        )
    };
    if let Some((p, m)) = id.split_once(':') {
        if let Some(provider) = state.client.provider(p) {
            let info = provider.info();
            let known = match state.client.provider_models(p).await {
                Ok(list) => list,
                Err(_) => info.all_models(),
            };
            if known.iter().any(|k| k == m) || info.alias_target(m).is_some() || known.is_empty() {
                let kind = if info.image_models.iter().any(|x| x == m) {
                    ModelKind::Image
                } else {
                    ModelKind::Chat
                };
                let vision = info.vision_models.iter().any(|x| x == m);
                let audio = info.audio_models.iter().any(|x| x == m);
                return found(id, &info.name, kind, vision, audio);
            }
            return not_found();
        }
    }
    let list = state.client.models().await;
    if let Some(m) = list.iter().find(|m| m.id == id) {
        return found(&m.id, &m.provider, m.kind, m.vision, m.audio);
    }
    for p in state.client.providers() {
        if p.info.alias_target(id).is_some() {
            return found(id, &p.info.name, ModelKind::Chat, false, false);
        }
    }
    not_found()
}

#[derive(Serialize)]
struct ProviderObject<'a> {
    id: &'a str,
    object: &'static str,
    label: &'a str,
    url: String,
    g4f_name: &'a str,
    working: bool,
    enabled: bool,
    needs_auth: bool,
    supports_stream: bool,
    supports_system_message: bool,
    supports_message_history: bool,
    default_model: &'a str,
    models: Vec<String>,
    image_models: &'a [String],
    vision_models: &'a [String],
    audio_models: &'a [String],
    aliases: &'a std::collections::BTreeMap<String, String>,
    /// Live health (see [`ProviderHealth`]).
    health: ProviderHealth,
}

fn provider_object<'a>(
    info: &'a llmux::ProviderInfo,
    enabled: bool,
    models: Vec<String>,
    health: &[llmux::ModelHealth],
) -> ProviderObject<'a> {
    ProviderObject {
        id: &info.name,
        object: "provider",
        label: &info.label,
        url: llmux_core::http::redact_url(&info.url),
        g4f_name: &info.g4f_name,
        working: info.working,
        enabled,
        needs_auth: info.needs_auth,
        supports_stream: info.supports_stream,
        supports_system_message: info.supports_system_message,
        supports_message_history: info.supports_message_history,
        default_model: &info.default_model,
        models,
        image_models: &info.image_models,
        vision_models: &info.vision_models,
        audio_models: &info.audio_models,
        aliases: &info.model_aliases,
        health: ProviderHealth::of(&info.name, health),
    }
}

/// `GET /v1/providers`: static metadata (no network) and live health.
fn providers(state: &State) -> Response<Body> {
    let list = state.client.providers();
    let health = state.client.health();
    let data: Vec<ProviderObject<'_>> = list
        .iter()
        .map(|p| provider_object(&p.info, p.enabled, p.info.all_models(), &health))
        .collect();
    body::json(
        StatusCode::OK,
        &List {
            object: "list",
            data,
        },
    )
}

/// `GET /v1/providers/{name}`: metadata plus discovered models.
async fn provider(state: &State, name: &str) -> Response<Body> {
    let list = state.client.providers();
    let Some(p) = list.iter().find(|p| {
        p.info.name.eq_ignore_ascii_case(name)
            || (!p.info.g4f_name.is_empty() && p.info.g4f_name.eq_ignore_ascii_case(name))
    }) else {
        let e = state
            .client
            .provider_models(name)
            .await
            .err()
            .unwrap_or_else(|| Error::ProviderNotFound {
                name: name.to_owned(),
                suggestions: Vec::new(),
            });
        return body::error(&from_llmux(&e));
    };
    let models = match state.client.provider_models(&p.info.name).await {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(provider = %p.info.name, error = %e, "model discovery failed");
            p.info.all_models()
        }
    };
    let health = state.client.health();
    body::json(
        StatusCode::OK,
        &provider_object(&p.info, p.enabled, models, &health),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_query_keys() {
        assert!(matches!(route("/v1/chat/completions"), Some(Route::Chat)));
        assert!(matches!(route("/chat/completions/"), Some(Route::Chat)));
        assert!(
            matches!(route("/v1/models/org/model%20x"), Some(Route::Model(m)) if m == "org/model x")
        );
        assert!(route("/v1x/models").is_none());
        assert!(query_has_key("a=1&api-key=x"));
        assert!(query_has_key("key=x"));
        assert!(!query_has_key("provider=x&monkey=1"));
    }
}
