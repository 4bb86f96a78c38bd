//! The fault-injection matrix: one [`Target`] per provider fake (its protocol [`Step`]s and how
//! to configure it), every [`FaultId`], and what each (target, step, fault) cell must produce.
//!
//! A new provider gets the whole matrix by adding one `Target` to [`targets`]: a fake, the
//! routes of its protocol steps (with what kind of body each answers), and — only where its
//! documented behaviour differs from the generic rules — an `adjust` function.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use llmux::{Error, ProviderConfig, TimeoutPhase, Timeouts};
use llmux_testkit::amigochat::FakeAmigoChat;
use llmux_testkit::flowgpt::FakeFlowGpt;
use llmux_testkit::gradio::FakeGradio;
use llmux_testkit::hf_inference::{FakeHfInference, HfModel};
use llmux_testkit::huggingchat::FakeHuggingChat;
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault, Reply};

/// Distinctive secrets handed to the targets; no log line, error or `Debug` output may show them.
pub mod secrets {
    /// API key of the OpenAI-compatible target (its fake demands it).
    pub const OPENAI_KEY: &str = "sk-matrixSECRET-openai-7f3a91c2";
    /// API key of the fallback OpenAI-compatible instance.
    pub const BACKUP_KEY: &str = "sk-matrixSECRET-backup-2e8f0d4b";
    /// Hugging Face token of the inference target (its fake demands it).
    pub const HF_TOKEN: &str = "hf_matrixSECRETinference5b2c77e";
    /// HuggingChat's `hf-chat` session cookie (its fake demands it).
    pub const HF_CHAT_COOKIE: &str = "matrixSECRET-hfchat-cookie-4d1e09";
    /// A huggingface.co cookie for the ZeroGPU JWT route.
    pub const HUB_COOKIE: &str = "matrixSECRET-hub-cookie-9a0b3f";
    /// A ZeroGPU token given as the API key.
    pub const ZEROGPU_TOKEN: &str = "matrixSECRET-zerogpu-token-3c6d5e";
    /// The gateway's own key (never forwarded upstream).
    pub const GATEWAY_KEY: &str = "gw-matrixSECRET-gateway-8b1c2a";

    /// Every secret above.
    pub const ALL: &[&str] = &[
        OPENAI_KEY,
        BACKUP_KEY,
        HF_TOKEN,
        HF_CHAT_COOKIE,
        HUB_COOKIE,
        ZEROGPU_TOKEN,
        GATEWAY_KEY,
    ];
}

/// Name of the healthy fallback instance (openai-compat) in routed cells.
pub const BACKUP: &str = "backup";
/// What the fallback instance answers.
pub const BACKUP_ANSWER: &str = "Backup answer — complete.";

/// Timeouts of every matrix call: short, so stalls end quickly, yet with room for a fallback
/// after a stall even on a loaded 2-core machine. The first-byte budget of one request is
/// `connect + first_byte` (1.2 s).
pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        first_byte: Duration::from_millis(700),
        idle: Duration::from_millis(500),
        total: Duration::from_millis(3000),
    }
}

/// Response size limit of the matrix clients (steps may override it, like HuggingChat's pages).
pub const MAX_BODY: usize = 1024 * 1024;

/// What kind of body a step answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// One JSON document.
    Json,
    /// Server-sent events.
    Sse,
    /// JSON lines.
    JsonLines,
    /// An HTML page.
    Html,
}

/// Whether a step's body carries the answer's content incrementally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// A whole document (no content chunk before it is complete).
    Whole,
    /// A stream: `first_content` body chunks carry everything up to and including the first
    /// content; after `mid` chunks some but not all content was sent.
    Stream {
        /// Chunks up to and including the first content.
        first_content: usize,
        /// Chunks sent at "mid-stream".
        mid: usize,
    },
}

/// One request of a provider's protocol.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Short name.
    pub name: &'static str,
    /// Route pattern on the fake (as given to `FakeServer::inject`).
    pub route: &'static str,
    /// Body kind.
    pub wire: Wire,
    /// Whole or streamed.
    pub flow: Flow,
    /// Failures here are tolerated by design (e.g. model discovery falls back to a static list).
    pub best_effort: bool,
    /// The body limit this step reads under, when not [`MAX_BODY`].
    pub max_body: Option<usize>,
}

impl Step {
    const fn new(name: &'static str, route: &'static str, wire: Wire, flow: Flow) -> Self {
        Step {
            name,
            route,
            wire,
            flow,
            best_effort: false,
            max_body: None,
        }
    }

    const fn best_effort(mut self) -> Self {
        self.best_effort = true;
        self
    }

    const fn max_body(mut self, limit: usize) -> Self {
        self.max_body = Some(limit);
        self
    }

    /// True for streamed steps.
    pub fn is_stream(&self) -> bool {
        matches!(self.flow, Flow::Stream { .. })
    }
}

/// The error a cell must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// [`Error::Connect`].
    Connect,
    /// [`Error::HttpStatus`] with this status.
    Status(u16),
    /// [`Error::UpstreamApi`] with this status (an OpenAI-shaped error body, relayed as it is).
    UpstreamApi(u16),
    /// [`Error::MissingAuth`].
    MissingAuth,
    /// [`Error::RateLimited`] with this `Retry-After` (seconds).
    RateLimited(Option<u64>),
    /// [`Error::Cloudflare`].
    Cloudflare,
    /// [`Error::Protocol`].
    Protocol,
    /// [`Error::Timeout`] in this phase.
    Timeout(TimeoutPhase),
    /// [`Error::BodyTooLarge`].
    TooLarge,
    /// [`Error::ModelNotSupported`].
    ModelNotSupported,
    /// [`Error::Upstream`].
    Upstream,
}

impl Kind {
    /// True when `e` is this kind of error.
    pub fn matches(self, e: &Error) -> bool {
        match (self, e) {
            (Kind::Connect, Error::Connect { .. })
            | (Kind::MissingAuth, Error::MissingAuth { .. })
            | (Kind::Cloudflare, Error::Cloudflare { .. })
            | (Kind::Protocol, Error::Protocol { .. })
            | (Kind::TooLarge, Error::BodyTooLarge { .. })
            | (Kind::ModelNotSupported, Error::ModelNotSupported { .. })
            | (Kind::Upstream, Error::Upstream { .. }) => true,
            (Kind::Status(s), Error::HttpStatus { status, .. })
            | (Kind::UpstreamApi(s), Error::UpstreamApi { status, .. }) => s == *status,
            (Kind::RateLimited(r), Error::RateLimited { retry_after, .. }) => {
                r == retry_after.map(|d| d.as_secs())
            }
            (Kind::Timeout(p), Error::Timeout { phase, .. }) => p == *phase,
            _ => false,
        }
    }

    /// Whether fallback may move on to the next provider after this error (before content).
    pub fn falls_back(self) -> bool {
        !matches!(self, Kind::Timeout(TimeoutPhase::Total))
    }
}

/// What a cell must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The target's whole healthy answer (the fault is tolerated).
    Answer,
    /// This error.
    Fails(Kind),
}

/// When a fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Before the response headers.
    BeforeHeaders,
    /// After the headers, before any content.
    AfterHeaders,
    /// Right after the first content.
    AfterFirstContent,
    /// In the middle of the content.
    MidStream,
}

/// Every fault of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultId {
    /// Nothing listens on the origin (a closed port).
    Refused,
    /// The connection is closed before any response byte.
    Reset,
    /// This status with a JSON error body.
    Status(u16),
    /// 429 with `Retry-After: 1`.
    RateLimitedRetryAfter,
    /// A Cloudflare challenge page (403).
    Cloudflare,
    /// A proxy's HTML error page (502).
    HtmlError,
    /// A 200 HTML page where JSON (or a stream) was expected.
    HtmlInsteadOfJson,
    /// The headers never come (first-byte timeout).
    FirstByteStall,
    /// Headers, then silence (idle timeout).
    StallAfterHeaders,
    /// Headers, then the connection drops.
    DisconnectAfterHeaders,
    /// A body that is not what the protocol says.
    Malformed,
    /// The body cut inside a UTF-8 sequence (second half of the body).
    TruncatedUtf8,
    /// The body one byte at a time, forever (total timeout).
    SlowDrip,
    /// A body larger than the read limit.
    Oversized,
    /// The real body under a wrong `Content-Type`.
    WrongContentType,
    /// Silence right after the first content.
    StallAfterFirstContent,
    /// The connection drops right after the first content.
    DisconnectAfterFirstContent,
    /// Silence mid-stream.
    StallMidStream,
    /// The connection drops mid-stream.
    DisconnectMidStream,
}

/// Every per-step fault (the [`FaultId::Refused`] cell is per target).
pub const STEP_FAULTS: &[FaultId] = &[
    FaultId::Reset,
    FaultId::Status(400),
    FaultId::Status(401),
    FaultId::Status(403),
    FaultId::Status(404),
    FaultId::Status(429),
    FaultId::RateLimitedRetryAfter,
    FaultId::Status(500),
    FaultId::Status(502),
    FaultId::Status(503),
    FaultId::Status(520),
    FaultId::Cloudflare,
    FaultId::HtmlError,
    FaultId::HtmlInsteadOfJson,
    FaultId::FirstByteStall,
    FaultId::StallAfterHeaders,
    FaultId::DisconnectAfterHeaders,
    FaultId::Malformed,
    FaultId::TruncatedUtf8,
    FaultId::SlowDrip,
    FaultId::Oversized,
    FaultId::WrongContentType,
    FaultId::StallAfterFirstContent,
    FaultId::DisconnectAfterFirstContent,
    FaultId::StallMidStream,
    FaultId::DisconnectMidStream,
];

impl FaultId {
    /// Short name for reports.
    pub fn name(self) -> String {
        match self {
            FaultId::Status(c) => format!("status_{c}"),
            other => {
                let dbg = format!("{other:?}");
                let mut out = String::new();
                for (i, c) in dbg.chars().enumerate() {
                    if c.is_ascii_uppercase() && i > 0 {
                        out.push('_');
                    }
                    out.push(c.to_ascii_lowercase());
                }
                out
            }
        }
    }

    /// When the fault strikes on `step`.
    pub fn timing(self, step: &Step) -> Timing {
        match self {
            FaultId::Refused
            | FaultId::Reset
            | FaultId::Status(_)
            | FaultId::RateLimitedRetryAfter
            | FaultId::Cloudflare
            | FaultId::HtmlError
            | FaultId::FirstByteStall => Timing::BeforeHeaders,
            FaultId::TruncatedUtf8 if step.is_stream() => Timing::MidStream,
            FaultId::StallAfterFirstContent | FaultId::DisconnectAfterFirstContent => {
                Timing::AfterFirstContent
            }
            FaultId::StallMidStream | FaultId::DisconnectMidStream => Timing::MidStream,
            _ => Timing::AfterHeaders,
        }
    }

    /// Whether the fault exists on `step` ("after the first content" only on streamed steps).
    pub fn applies(self, step: &Step) -> bool {
        match self.timing(step) {
            Timing::AfterFirstContent => step.is_stream(),
            Timing::MidStream => step.is_stream(),
            _ => true,
        }
    }

    /// The testkit fault that injects this on `step`.
    pub fn fault(self, step: &Step) -> Fault {
        let (first, mid) = match step.flow {
            Flow::Stream { first_content, mid } => (first_content, mid),
            Flow::Whole => (1, 1),
        };
        match self {
            FaultId::Refused | FaultId::Reset => Fault::ResetBeforeHeaders,
            FaultId::Status(code) => Fault::status(code),
            FaultId::RateLimitedRetryAfter => Fault::rate_limited("1"),
            FaultId::Cloudflare => Fault::CloudflareChallenge,
            FaultId::HtmlError => Fault::HtmlError { code: 502 },
            FaultId::HtmlInsteadOfJson => Fault::Reply(Reply::html(
                200,
                "<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>",
            )),
            FaultId::FirstByteStall => Fault::Delay(Duration::from_secs(30)),
            FaultId::StallAfterHeaders => Fault::StallAfterHeaders,
            FaultId::DisconnectAfterHeaders => Fault::DisconnectAfter { chunks: 0 },
            FaultId::Malformed => Fault::Malformed(
                match step.wire {
                    Wire::Json => "{\"id\": \"x\", \"choices\": [",
                    Wire::Sse => "data: {\"choices\": [{\"delta\": \n\n",
                    Wire::JsonLines => "{\"type\": \"stream\", \"token\": \n{\"event\":\n",
                    Wire::Html => "<html><body>\u{0}\u{1}garbage",
                }
                .into(),
            ),
            FaultId::TruncatedUtf8 => Fault::TruncatedUtf8,
            // 30 bytes in the 3 s budget (less than any body), each well within the idle timeout
            FaultId::SlowDrip => Fault::SlowDrip {
                interval: Duration::from_millis(100),
            },
            FaultId::Oversized => Fault::Oversized {
                bytes: step.max_body.unwrap_or(MAX_BODY) + 256 * 1024,
            },
            FaultId::WrongContentType => Fault::WrongContentType("text/plain".into()),
            FaultId::StallAfterFirstContent => Fault::StallAfter { chunks: first },
            FaultId::DisconnectAfterFirstContent => Fault::DisconnectAfter { chunks: first },
            FaultId::StallMidStream => Fault::StallAfter { chunks: mid },
            FaultId::DisconnectMidStream => Fault::DisconnectAfter { chunks: mid },
        }
    }

    /// The generic outcome on `step`, before a target's adjustments.
    pub fn generic(self, step: &Step) -> Expect {
        let kind = match self {
            FaultId::Refused
            | FaultId::Reset
            | FaultId::DisconnectAfterHeaders
            | FaultId::DisconnectAfterFirstContent
            | FaultId::DisconnectMidStream => Kind::Connect,
            FaultId::Status(401) => Kind::MissingAuth,
            FaultId::Status(429) => Kind::RateLimited(None),
            FaultId::RateLimitedRetryAfter => Kind::RateLimited(Some(1)),
            FaultId::Status(code) => Kind::Status(code),
            FaultId::Cloudflare => Kind::Cloudflare,
            FaultId::HtmlError => Kind::Status(502),
            FaultId::HtmlInsteadOfJson | FaultId::Malformed | FaultId::TruncatedUtf8 => {
                Kind::Protocol
            }
            FaultId::FirstByteStall => Kind::Timeout(TimeoutPhase::FirstByte),
            FaultId::StallAfterHeaders
            | FaultId::StallAfterFirstContent
            | FaultId::StallMidStream => Kind::Timeout(TimeoutPhase::Idle),
            FaultId::SlowDrip => Kind::Timeout(TimeoutPhase::Total),
            FaultId::Oversized => Kind::TooLarge,
            // the content type is advisory: the body is what the protocol says
            FaultId::WrongContentType => return Expect::Answer,
        };
        if step.best_effort && kind.falls_back() {
            return Expect::Answer;
        }
        Expect::Fails(kind)
    }

    /// Whether content must (`Some(true)`) or must not (`Some(false)`) precede the error.
    pub fn content_before_error(self, step: &Step) -> Option<bool> {
        match self.timing(step) {
            // a slow stream may get some content out before the budget is spent
            Timing::AfterHeaders if self == FaultId::SlowDrip && step.is_stream() => None,
            Timing::BeforeHeaders | Timing::AfterHeaders => Some(false),
            Timing::AfterFirstContent => Some(true),
            // a body cut in its second half may end inside the first content
            Timing::MidStream if self == FaultId::TruncatedUtf8 => None,
            Timing::MidStream => Some(true),
        }
    }
}

/// One provider fake and how to drive it.
pub struct Target {
    /// Instance name (the provider's name, or a named openai-compat instance).
    pub name: &'static str,
    /// Registration (provider kind).
    pub kind: &'static str,
    /// Model asked for (served by the target statically, and by the fallback instance).
    pub model: &'static str,
    /// The healthy answer's text (with multi-byte characters, for UTF-8 truncation).
    pub answer: &'static str,
    /// Whether the request streams.
    pub stream: bool,
    /// Starts the fake.
    pub start: fn() -> BoxFuture<'static, FakeServer>,
    /// The provider configuration for a fake at `origin` (`http://127.0.0.1:PORT`).
    pub config: fn(&str) -> ProviderConfig,
    /// The protocol's requests, in order.
    pub steps: &'static [Step],
    /// Where the target's documented behaviour differs from the generic outcome.
    pub adjust: fn(FaultId, &Step, Expect) -> Expect,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn same(_: FaultId, _: &Step, e: Expect) -> Expect {
    e
}

const OPENAI_MODEL: &str = "matrix-model";
const OPENAI_ANSWER: &str = "Grüße aus der Fälschung — ein vollständiger Satz.";
const OPENAI_STEPS: &[Step] = &[Step::new(
    "chat",
    "/v1/chat/completions",
    Wire::Sse,
    // role delta, then 4 content deltas
    Flow::Stream {
        first_content: 2,
        mid: 3,
    },
)];
const OPENAI_WHOLE_STEPS: &[Step] = &[Step::new(
    "chat",
    "/v1/chat/completions",
    Wire::Json,
    Flow::Whole,
)];

fn openai_start() -> BoxFuture<'static, FakeServer> {
    Box::pin(
        FakeOpenAi::new()
            .models([OPENAI_MODEL])
            .reply(OPENAI_ANSWER)
            .chunks(4)
            .api_key(secrets::OPENAI_KEY)
            .start(),
    )
}

fn openai_config(origin: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::default()
        .with_base_url(format!("{origin}/v1"))
        .with_api_key(secrets::OPENAI_KEY);
    cfg.models = vec![OPENAI_MODEL.into()];
    cfg
}

/// openai-compat: an OpenAI-shaped error body (the fake's faults send one) is kept as the
/// upstream said it; an SSE body sent with another content type is still read as SSE (as
/// OpenAI's SDKs do), so the answer arrives.
fn openai_adjust(f: FaultId, _step: &Step, e: Expect) -> Expect {
    match (f, e) {
        (FaultId::Status(_), Expect::Fails(Kind::Status(s))) => Expect::Fails(Kind::UpstreamApi(s)),
        (_, e) => e,
    }
}

/// amigochat: as the OpenAI wire; and it retries every failure before content up to 3 times
/// (protocol §4.6), so three first-byte stalls (3 × 1.2 s) spend the whole 3 s budget.
fn amigo_adjust(f: FaultId, _step: &Step, e: Expect) -> Expect {
    match f {
        FaultId::FirstByteStall => Expect::Fails(Kind::Timeout(TimeoutPhase::Total)),
        _ => e,
    }
}

const AMIGO_MODEL: &str = "gpt-4o-mini";
const AMIGO_ANSWER: &str = "Hallo Amigo — schöne Grüße aus Zürich!";
const AMIGO_STEPS: &[Step] = &[Step::new(
    "chat",
    "/v1/chat/completions",
    Wire::Sse,
    Flow::Stream {
        first_content: 2,
        mid: 3,
    },
)];

fn amigo_start() -> BoxFuture<'static, FakeServer> {
    Box::pin(FakeAmigoChat::new().reply(AMIGO_ANSWER).chunks(4).start())
}

fn amigo_config(origin: &str) -> ProviderConfig {
    ProviderConfig::default().with_base_url(origin)
}

const FLOWGPT_MODEL: &str = "gpt-3.5-turbo";
const FLOWGPT_ANSWER: &str = "Je vais très bien — merci, à bientôt !";
const FLOWGPT_STEPS: &[Step] = &[Step::new(
    "chat",
    "/v3/chat-anonymous",
    Wire::JsonLines,
    Flow::Stream {
        first_content: 1,
        mid: 2,
    },
)];

fn flowgpt_start() -> BoxFuture<'static, FakeServer> {
    Box::pin(FakeFlowGpt::new().reply(FLOWGPT_ANSWER).chunks(4).start())
}

fn flowgpt_config(origin: &str) -> ProviderConfig {
    ProviderConfig::default().with_base_url(origin)
}

const HF_MODEL: &str = "Qwen/Qwen2.5-72B-Instruct";
const HF_TOKENS: &[&str] = &["Grüße", " aus", " dem", " Hugging", " Face", " — ende."];
const HF_ANSWER: &str = "Grüße aus dem Hugging Face — ende.";
const HF_STEPS: &[Step] = &[
    Step::new(
        "model-data",
        "/api/models/Qwen/Qwen2.5-72B-Instruct",
        Wire::Json,
        Flow::Whole,
    ),
    Step::new(
        "inference",
        "/models/Qwen/Qwen2.5-72B-Instruct",
        Wire::Sse,
        Flow::Stream {
            first_content: 1,
            mid: 2,
        },
    ),
];

fn hf_start() -> BoxFuture<'static, FakeServer> {
    Box::pin(
        FakeHfInference::new()
            .model(HfModel::new(HF_MODEL, "text-generation").model_type("qwen2"))
            .tokens(HF_TOKENS.iter().copied())
            .end_token(Some("<|im_end|>"))
            .api_key(secrets::HF_TOKEN)
            .start(),
    )
}

fn hf_config(origin: &str) -> ProviderConfig {
    ProviderConfig::default()
        .with_base_url(origin)
        .with_origin("hub", origin)
        .with_origin("router", origin)
        .with_api_key(secrets::HF_TOKEN)
}

/// huggingface-inference: 404 means "model not supported" on both steps.
fn hf_adjust(f: FaultId, _step: &Step, e: Expect) -> Expect {
    match f {
        FaultId::Status(404) => Expect::Fails(Kind::ModelNotSupported),
        _ => e,
    }
}

const HC_MODEL: &str = "Qwen/Qwen2.5-72B-Instruct";
const HC_ANSWER: &str = "Frank Herbert schrieb „Dune“ — fertig.";
const HC_STEPS: &[Step] = &[
    Step::new("page", "/chat", Wire::Html, Flow::Whole)
        .best_effort()
        .max_body(16 * 1024 * 1024),
    Step::new("create", "/chat/conversation", Wire::Json, Flow::Whole),
    Step::new(
        "data",
        "/chat/conversation/{id}/__data.json",
        Wire::Json,
        Flow::Whole,
    )
    .max_body(16 * 1024 * 1024),
    Step::new(
        "message",
        "/chat/conversation/{id}",
        Wire::JsonLines,
        // status line, then 4 token lines
        Flow::Stream {
            first_content: 2,
            mid: 3,
        },
    ),
];

fn hc_start() -> BoxFuture<'static, FakeServer> {
    let fake = FakeHuggingChat::new()
        .cookie(secrets::HF_CHAT_COOKIE)
        .reply(HC_ANSWER)
        .chunks(4);
    Box::pin(async move { fake.start().await })
}

fn hc_config(origin: &str) -> ProviderConfig {
    ProviderConfig::default()
        .with_base_url(format!("{origin}/chat"))
        .with_cookies(llmux::Cookies::parse(&format!(
            "hf-chat={}",
            secrets::HF_CHAT_COOKIE
        )))
        .with_option("api", serde_json::json!("v1"))
}

/// huggingchat: 401/403 mean an expired session cookie; an HTML answer to "create
/// conversation" too; a 404 for the conversation just created is a protocol error.
fn hc_adjust(f: FaultId, step: &Step, e: Expect) -> Expect {
    if step.best_effort {
        return e;
    }
    match (f, step.name) {
        (FaultId::Status(401 | 403), _) => Expect::Fails(Kind::MissingAuth),
        (FaultId::HtmlInsteadOfJson, "create") => Expect::Fails(Kind::MissingAuth),
        (FaultId::Status(404), "data") => Expect::Fails(Kind::Protocol),
        _ => e,
    }
}

const PHI_MODEL: &str = "phi-4-multimodal";
const PHI_ANSWER: &str = "Grüße vom Phi — schön, dich zu sehen.";
const PHI_SPACE_STEPS: [Step; 4] = [
    // the Space's Gradio version (read once per client)
    Step::new("config", "/config", Wire::Json, Flow::Whole),
    Step::new(
        "predict",
        "/gradio_api/run/predict",
        Wire::Json,
        Flow::Whole,
    ),
    Step::new("join", "/gradio_api/queue/join", Wire::Json, Flow::Whole),
    Step::new(
        "data",
        "/gradio_api/queue/data",
        Wire::Sse,
        // estimation, process_starts, then the first process_generating
        Flow::Stream {
            first_content: 3,
            mid: 4,
        },
    ),
];
const PHI_STEPS: &[Step] = &[
    Step::new("page", "/spaces/{owner}/{name}", Wire::Html, Flow::Whole).best_effort(),
    Step::new(
        "jwt",
        "/api/spaces/{owner}/{name}/jwt",
        Wire::Json,
        Flow::Whole,
    ),
    PHI_SPACE_STEPS[0],
    PHI_SPACE_STEPS[1],
    PHI_SPACE_STEPS[2],
    PHI_SPACE_STEPS[3],
];

fn phi_start() -> BoxFuture<'static, FakeServer> {
    Box::pin(FakeGradio::new().reply(PHI_ANSWER).start())
}

fn phi_config(origin: &str) -> ProviderConfig {
    ProviderConfig::default()
        .with_base_url(origin)
        .with_origin("hub", origin)
        .with_cookies(llmux::Cookies::parse(&format!(
            "token={}",
            secrets::HUB_COOKIE
        )))
}

fn phi_token_config(origin: &str) -> ProviderConfig {
    ProviderConfig::default()
        .with_base_url(origin)
        .with_origin("hub", origin)
        .with_api_key(secrets::ZEROGPU_TOKEN)
}

/// microsoft-phi-4: a refused JWT status keeps the page token; only the status of `predict`
/// and `join` is checked (protocol §2.6), so a broken 2xx body there is harmless — except an
/// HTML page instead of `join`, which queued nothing: the queue then reports "Session not found".
fn phi_adjust(f: FaultId, step: &Step, e: Expect) -> Expect {
    match (f, step.name) {
        (
            FaultId::Status(_)
            | FaultId::RateLimitedRetryAfter
            | FaultId::Cloudflare
            | FaultId::HtmlError,
            "jwt",
        ) => Expect::Answer,
        (FaultId::Malformed | FaultId::TruncatedUtf8, "predict" | "join")
        | (FaultId::HtmlInsteadOfJson, "predict") => Expect::Answer,
        (FaultId::HtmlInsteadOfJson, "join") => Expect::Fails(Kind::Upstream),
        _ => e,
    }
}

// @matrix-modules (cargo xtask new-provider inserts `mod NAME;` lines above this marker)

/// Every target of the matrix.
pub fn targets() -> Vec<Arc<Target>> {
    vec![
        Arc::new(Target {
            name: "matrix-openai",
            kind: "openai-compat",
            model: OPENAI_MODEL,
            answer: OPENAI_ANSWER,
            stream: true,
            start: openai_start,
            config: openai_config,
            steps: OPENAI_STEPS,
            adjust: openai_adjust,
        }),
        Arc::new(Target {
            name: "matrix-openai-whole",
            kind: "openai-compat",
            model: OPENAI_MODEL,
            answer: OPENAI_ANSWER,
            stream: false,
            start: openai_start,
            config: openai_config,
            steps: OPENAI_WHOLE_STEPS,
            adjust: openai_adjust,
        }),
        Arc::new(Target {
            name: "amigochat",
            kind: "amigochat",
            model: AMIGO_MODEL,
            answer: AMIGO_ANSWER,
            stream: true,
            start: amigo_start,
            config: amigo_config,
            steps: AMIGO_STEPS,
            adjust: amigo_adjust,
        }),
        Arc::new(Target {
            name: "flowgpt",
            kind: "flowgpt",
            model: FLOWGPT_MODEL,
            answer: FLOWGPT_ANSWER,
            stream: true,
            start: flowgpt_start,
            config: flowgpt_config,
            steps: FLOWGPT_STEPS,
            adjust: same,
        }),
        Arc::new(Target {
            name: "huggingface-inference",
            kind: "huggingface-inference",
            model: HF_MODEL,
            answer: HF_ANSWER,
            stream: true,
            start: hf_start,
            config: hf_config,
            steps: HF_STEPS,
            adjust: hf_adjust,
        }),
        Arc::new(Target {
            name: "huggingchat",
            kind: "huggingchat",
            model: HC_MODEL,
            answer: HC_ANSWER,
            stream: true,
            start: hc_start,
            config: hc_config,
            steps: HC_STEPS,
            adjust: hc_adjust,
        }),
        Arc::new(Target {
            name: "microsoft-phi-4",
            kind: "microsoft-phi-4",
            model: PHI_MODEL,
            answer: PHI_ANSWER,
            stream: true,
            start: phi_start,
            config: phi_config,
            steps: PHI_STEPS,
            adjust: phi_adjust,
        }),
        Arc::new(Target {
            name: "microsoft-phi-4-token",
            kind: "microsoft-phi-4",
            model: PHI_MODEL,
            answer: PHI_ANSWER,
            stream: true,
            start: phi_start,
            config: phi_token_config,
            steps: &PHI_SPACE_STEPS,
            adjust: phi_adjust,
        }),
        // @matrix-targets (cargo xtask new-provider inserts `NAME::target(),` lines above this marker)
    ]
}

/// One cell: a target, the step the fault hits (`None`: the whole origin refuses
/// connections), the fault and the expected outcome.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The target.
    pub target: Arc<Target>,
    /// The step (None for [`FaultId::Refused`]).
    pub step: Option<Step>,
    /// The fault.
    pub fault: FaultId,
    /// Expected outcome.
    pub expect: Expect,
    /// Whether content must precede the error.
    pub content_before_error: Option<bool>,
}

impl Cell {
    /// `target/step/fault`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.target.name,
            self.step.map_or("connect", |s| s.name),
            self.fault.name()
        )
    }
}

/// Every cell of the matrix, in a stable order (only those whose id contains
/// `LLMUX_MATRIX_ONLY`, when that variable is set: for debugging one cell).
pub fn cells() -> Vec<Cell> {
    let all = all_cells();
    match std::env::var("LLMUX_MATRIX_ONLY") {
        Ok(only) if !only.is_empty() => {
            all.into_iter().filter(|c| c.id().contains(&only)).collect()
        }
        _ => all,
    }
}

fn all_cells() -> Vec<Cell> {
    let mut out = Vec::new();
    for target in targets() {
        out.push(Cell {
            target: target.clone(),
            step: None,
            fault: FaultId::Refused,
            expect: Expect::Fails(Kind::Connect),
            content_before_error: Some(false),
        });
        for step in target.steps {
            for &fault in STEP_FAULTS {
                if !fault.applies(step) {
                    continue;
                }
                let expect = (target.adjust)(fault, step, fault.generic(step));
                out.push(Cell {
                    target: target.clone(),
                    step: Some(*step),
                    fault,
                    expect,
                    content_before_error: fault.content_before_error(step),
                });
            }
        }
    }
    out
}

/// Faults that do not apply to a step, with the reason (so nothing is skipped silently).
pub fn not_applicable() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for target in targets() {
        for step in target.steps {
            for &fault in STEP_FAULTS {
                if !fault.applies(step) {
                    out.push((
                        format!("{}/{}/{}", target.name, step.name, fault.name()),
                        "a whole (non-streamed) body has no \"after the first content\" point",
                    ));
                }
            }
        }
    }
    out
}
