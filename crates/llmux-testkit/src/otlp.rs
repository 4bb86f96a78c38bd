//! A minimal OTLP/HTTP traces receiver: accepts `POST /v1/traces` in the JSON encoding of
//! OTLP (`ExportTraceServiceRequest`), answers `{}` (full success), and decodes what arrived.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{FakeServer, Method, Reply, Router};

/// Path of the traces endpoint.
pub const TRACES: &str = "/v1/traces";

/// One received span.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Span name.
    pub name: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex id of the parent span (empty for a root span).
    pub parent_span_id: String,
    /// Attributes, with OTLP's `AnyValue` unwrapped (`intValue` strings become numbers).
    pub attributes: BTreeMap<String, Value>,
}

/// Starts the receiver.
pub async fn start() -> FakeServer {
    let router = Router::new().reply(Method::POST, TRACES, Reply::json(200, &json!({})));
    FakeServer::start(router).await
}

fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = v.get("intValue") {
        // int64 is a string in OTLP's JSON encoding (numbers are accepted too)
        return match i {
            Value::String(s) => s.parse::<i64>().map_or(i.clone(), Value::from),
            other => other.clone(),
        };
    }
    for k in ["doubleValue", "boolValue"] {
        if let Some(x) = v.get(k) {
            return x.clone();
        }
    }
    v.clone()
}

/// Every span in the export requests `server` received (requests that are not valid JSON are
/// skipped).
pub fn spans(server: &FakeServer) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for req in server.requests_to(TRACES) {
        let Ok(body) = req.json() else { continue };
        let resource_spans = body["resourceSpans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for rs in &resource_spans {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                    let attributes = s["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| {
                            Some((a["key"].as_str()?.to_owned(), any_value(&a["value"])))
                        })
                        .collect();
                    out.push(ReceivedSpan {
                        name: text("name"),
                        trace_id: text("traceId"),
                        span_id: text("spanId"),
                        parent_span_id: text("parentSpanId"),
                        attributes,
                    });
                }
            }
        }
    }
    out
}
