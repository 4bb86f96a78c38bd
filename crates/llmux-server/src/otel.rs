//! OpenTelemetry export (cargo feature `otel`): the gateway's `request` spans and the facade's
//! `attempt` spans (with `ttft_ms`), sent over OTLP/HTTP (JSON encoding) by a batch exporter.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! let (layer, guard) = llmux_server::otel::layer("http://127.0.0.1:4318/v1/traces", "llmux")
//!     .expect("exporter");
//! tracing_subscriber::registry().with(layer).init();
//! // … serve …
//! drop(guard); // flushes the spans still buffered
//! ```

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::registry::LookupSpan;

/// Flushes and shuts the exporter down when dropped.
pub struct OtelGuard {
    provider: SdkTracerProvider,
}

impl std::fmt::Debug for OtelGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtelGuard")
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("llmux: could not flush OpenTelemetry spans: {e}");
        }
    }
}

/// A `tracing` layer exporting spans to the OTLP/HTTP traces endpoint `endpoint` (e.g.
/// `http://127.0.0.1:4318/v1/traces`) as service `service`, and the guard that flushes it.
pub fn layer<S>(
    endpoint: &str,
    service: &str,
) -> Result<(impl tracing_subscriber::Layer<S>, OtelGuard), String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("llmux");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((layer, OtelGuard { provider }))
}
