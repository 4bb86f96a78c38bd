//! The fault-injection matrix through the gateway over HTTP: each cell behind its own gateway
//! (with a gateway key), the target named in the body or routed by model with a fallback.
//! Failures before any output get real statuses and OpenAI error bodies; failures after output
//! has begun are an SSE error event followed by `[DONE]`. No fake ever sees the gateway key,
//! and nothing the gateway logged or answered shows a secret.

use std::time::Duration;

use llmux_e2e::capture::Capture;
use llmux_e2e::gateway::Gw;
use llmux_e2e::matrix::{self, secrets};
use llmux_e2e::runner::{self, Mode, Via};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_fault_matrix_and_secrets() {
    let _alone = llmux_e2e::alone().await;
    let (capture, _recording) = Capture::global();
    let cells = matrix::cells();
    runner::run_matrix_test(Via::Gateway, &cells, &capture).await;
}

/// `POST /v1/responses` (stream) over every streaming target whose stream is cut or stalls
/// after content began: a 200 stream of typed events ending with `response.failed` (a typed
/// `error`, the output marked incomplete), never a completion. Cut before any content, it is an
/// OpenAI error status instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_route_cut_streams_fail_typed() {
    let _shared = llmux_e2e::shared().await;
    use llmux_e2e::gateway::{auth, config, well_formed_error};
    use llmux_e2e::matrix::{Expect, FaultId};
    use llmux_testkit::client;
    use serde_json::{Value, json};

    let (capture, _recording) = Capture::global();
    let cells: Vec<_> = matrix::cells()
        .into_iter()
        .filter(|c| {
            c.target.stream
                && matches!(c.expect, Expect::Fails(_))
                && matches!(
                    c.fault,
                    FaultId::DisconnectAfterFirstContent
                        | FaultId::DisconnectMidStream
                        | FaultId::StallMidStream
                        | FaultId::StallAfterFirstContent
                )
        })
        .collect();
    assert!(!cells.is_empty(), "the matrix has cut streams");
    let mut failures = Vec::new();
    for cell in &cells {
        if cell.step.is_none() {
            continue;
        }
        let armed = runner::arm(cell, Mode::Explicit, 64).await;
        let gw = Gw::start(runner::client(cell, &armed.origin, None), config()).await;
        let (k, v) = auth();
        let body = json!({"model": cell.target.model, "provider": cell.target.name,
            "input": "Say hello, please.", "stream": true});
        let outcome = async {
            let resp = client::post_json(&gw.url("/v1/responses"), &[(k, v.as_str())], &body)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status.as_u16();
            let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
            if status != 200 {
                let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
                capture.record(v.to_string());
                if cell.content_before_error == Some(true) {
                    return Err(format!("{status} although content came first: {text}"));
                }
                return well_formed_error(&v["error"]);
            }
            // `event: <type>` then `data: <json>` per event
            let events: Vec<Value> = text
                .split("\n\n")
                .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
                .map(|e| serde_json::from_str(e).map_err(|x| format!("{x}: {e}")))
                .collect::<Result<_, _>>()?;
            let last = events.last().ok_or("an empty stream")?;
            capture.record(last.to_string());
            let error = &last["response"]["error"];
            let typed = last["type"] == "response.failed"
                && last["response"]["status"] == "failed"
                && error["code"].as_str().is_some_and(|c| !c.is_empty())
                && error["message"].as_str().is_some_and(|m| !m.is_empty());
            if !typed || events.iter().any(|e| e["type"] == "response.completed") {
                return Err(format!("not a typed failure: {text}"));
            }
            let numbered = events
                .iter()
                .enumerate()
                .all(|(i, e)| e["sequence_number"] == json!(i));
            if !numbered {
                return Err(format!("sequence numbers out of order: {text}"));
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", cell.id()));
        }
        if let Err(e) = gw.stop().await {
            failures.push(format!("{}: {e}", cell.id()));
        }
    }
    eprintln!("responses route: {} cut-stream cells", cells.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let leaks = capture.leaks(secrets::ALL);
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
}

/// The Messages route (`POST /v1/messages`, Anthropic's SSE events) under every fault of the
/// matrix that strikes after output has begun, on the streamed OpenAI target: the stream ends
/// with a typed `error` event, never with `message_delta` / `message_stop` (a false completion),
/// and the text before it is a prefix of the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_route_after_output_faults_are_error_events() {
    let _shared = llmux_e2e::shared().await;
    use llmux_e2e::matrix::Timing;
    use serde_json::{Value, json};

    let cells: Vec<_> = matrix::cells()
        .into_iter()
        .filter(|c| c.target.name == "matrix-openai")
        .filter(|c| {
            c.step.is_some_and(|s| {
                matches!(
                    c.fault.timing(&s),
                    Timing::AfterFirstContent | Timing::MidStream
                )
            })
        })
        .collect();
    assert!(
        cells.len() >= 4,
        "the after-output faults of the streamed OpenAI target"
    );
    let mut cut_streams = 0;
    for cell in &cells {
        assert!(cell.step.is_some(), "a step");
        let armed = runner::arm(cell, Mode::Explicit, 1).await;
        let gw = Gw::start(
            runner::client(cell, &armed.origin, None),
            llmux_e2e::gateway::config(),
        )
        .await;
        let url = gw.url("/v1/messages");
        let body = json!({"model": format!("{}:{}", cell.target.name, cell.target.model),
            "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "Say hello, please."}]});
        let resp = llmux_testkit::client::post_json(
            &url,
            &[
                ("x-api-key", secrets::GATEWAY_KEY),
                ("anthropic-version", "2023-06-01"),
            ],
            &body,
        )
        .await
        .expect("response");
        if resp.status != 200 {
            // the fault struck before any output reached the gateway: a real status, in
            // Anthropic's shape
            assert_ne!(cell.content_before_error, Some(true), "{}", cell.id());
            let v: Value = resp.json().await.expect("error body");
            assert_eq!(v["type"], "error", "{}: {v}", cell.id());
            drop(gw);
            continue;
        }
        let text = tokio::time::timeout(Duration::from_secs(20), resp.text())
            .await
            .expect("the stream ends")
            .expect("body");
        let events: Vec<(String, Value)> = text
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .filter_map(|e| {
                let name = e.lines().find_map(|l| l.strip_prefix("event: "))?;
                let data = e.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((name.to_owned(), serde_json::from_str(data).ok()?))
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names.first(),
            Some(&"message_start"),
            "{}: {text}",
            cell.id()
        );
        assert_eq!(names.last(), Some(&"error"), "{}: {text}", cell.id());
        assert!(
            !names.contains(&"message_stop") && !names.contains(&"message_delta"),
            "{}: a false completion: {text}",
            cell.id()
        );
        let err = &events[events.len() - 1].1;
        assert_eq!(err["type"], "error");
        assert!(
            err["error"]["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("_error")),
            "{}: {err}",
            cell.id()
        );
        let streamed: String = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert!(
            !streamed.is_empty() && cell.target.answer.starts_with(&streamed),
            "{}: {streamed:?}",
            cell.id()
        );
        assert!(!text.contains(secrets::OPENAI_KEY), "{}", cell.id());
        cut_streams += 1;
        drop(gw);
    }
    assert!(
        cut_streams >= 4,
        "only {cut_streams} cells cut a stream that had begun"
    );
}
