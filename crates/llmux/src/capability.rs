//! Which request fields a provider honours. Routing keeps only the providers that can honour a
//! request; for each attempt, [`plan`] says what to emulate and which fields the provider ignores
//! (named to the caller in [`llmux_core::ProviderInfoChunk::ignored_params`]). A field is either
//! honoured, emulated on request, ignored out loud, or refused: never dropped silently.

use llmux_core::{ChatRequest, Error, ProviderInfo, ResponseFormat, ToolChoice};
use serde_json::Value;

/// What one attempt on one provider does with the request's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Emulate `tools` with a prompt (see [`crate::emulation`]).
    pub emulate_tools: bool,
    /// Emulate `response_format` with a prompt.
    pub emulate_format: bool,
    /// Fields the provider ignores.
    pub ignored: Vec<String>,
}

/// Fields (in [`ChatRequest::extra`]) whose loss would change the answer: refused where the
/// provider cannot honour them.
const ANSWER_CHANGING: &[&str] = &["logprobs", "top_logprobs", "modalities", "audio", "n"];

/// True when an answer-changing field asks for something (`logprobs: false`, `n: 1`,
/// `modalities: ["text"]` ask for nothing).
fn asks(key: &str, v: &Value) -> bool {
    match (key, v) {
        (_, Value::Null | Value::Bool(false)) => false,
        ("n", v) => v.as_u64() != Some(1),
        ("top_logprobs", v) => v.as_u64() != Some(0),
        ("modalities", Value::Array(a)) => a.iter().any(|m| m != "text"),
        _ => true,
    }
}

/// Whether the request wants tools called.
pub(crate) fn wants_tools(req: &ChatRequest) -> bool {
    !req.tools.is_empty() && req.tool_choice != Some(ToolChoice::None)
}

/// Whether the request wants a JSON answer.
pub(crate) fn wants_json(req: &ChatRequest) -> bool {
    matches!(
        req.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    )
}

/// The plan for `req` on the provider `info`; `emulation`: tool emulation is on for this call.
/// Errors are [`Error::Unsupported`], naming the provider, the field and the switch.
pub(crate) fn plan(req: &ChatRequest, info: &ProviderInfo, emulation: bool) -> Result<Plan, Error> {
    let caps = &info.capabilities;
    let refuse = |param: &str, help: &str| Error::Unsupported {
        provider: info.name.clone(),
        param: param.to_owned(),
        help: help.to_owned(),
    };
    const EMULATION: &str = "turn on tool emulation (request field `tool_emulation: true`, \
        `tool_emulation = true` in this provider's configuration, or `llmux serve \
        --tool-emulation`), or choose a provider that supports it";
    let mut plan = Plan::default();
    if wants_tools(req) && !caps.tools {
        if !emulation {
            return Err(refuse(
                "tools",
                &format!("it has no native function calling; {EMULATION}"),
            ));
        }
        plan.emulate_tools = true;
    }
    if wants_json(req) && !caps.structured_output {
        if !emulation {
            return Err(refuse(
                "response_format",
                &format!("it has no native structured output; {EMULATION}"),
            ));
        }
        plan.emulate_format = true;
    }
    if caps.openai_wire {
        return Ok(plan);
    }
    for key in ANSWER_CHANGING {
        if req.extra.get(*key).is_some_and(|v| asks(key, v)) {
            return Err(refuse(
                key,
                "only OpenAI-compatible upstreams honour it; remove the field or choose such a provider",
            ));
        }
    }
    let set = [
        ("temperature", req.temperature.is_some()),
        ("top_p", req.top_p.is_some()),
        ("max_tokens", req.max_tokens.is_some()),
        ("stop", !req.stop.is_empty()),
        ("seed", req.seed.is_some()),
        ("presence_penalty", req.presence_penalty.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("user", req.user.is_some()),
    ];
    for (name, on) in set {
        if on && !caps.params.contains(&name) {
            plan.ignored.push(name.to_owned());
        }
    }
    for key in req.extra.keys() {
        let known = caps.options.contains(&key.as_str())
            || (key == "max_completion_tokens" && caps.params.contains(&"max_tokens"))
            || ANSWER_CHANGING.contains(&key.as_str());
        if !known {
            plan.ignored.push(key.clone());
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::{Capabilities, Tool};
    use serde_json::json;

    fn info(caps: Capabilities) -> ProviderInfo {
        ProviderInfo {
            name: "p".into(),
            capabilities: caps,
            ..ProviderInfo::default()
        }
    }

    fn tool_req() -> ChatRequest {
        ChatRequest::user("m", "hi").with_tool(Tool::function("f", "d", json!({"type": "object"})))
    }

    #[test]
    fn tools_are_native_emulated_or_refused() {
        let plain = info(Capabilities::plain(&["temperature"], &[]));
        assert_eq!(
            plan(&tool_req(), &info(Capabilities::OPENAI), false).ok(),
            Some(Plan::default())
        );
        let e = plan(&tool_req(), &plain, false).expect_err("refused");
        assert!(
            matches!(&e, Error::Unsupported { provider, param, help } if provider == "p" && param == "tools" && help.contains("tool_emulation")),
            "{e}"
        );
        assert!(
            plan(&tool_req(), &plain, true)
                .expect("emulated")
                .emulate_tools
        );
        let none = tool_req().with_tool_choice(ToolChoice::None);
        assert_eq!(plan(&none, &plain, false).ok(), Some(Plan::default()));
        let json = ChatRequest::user("m", "x").with_response_format(ResponseFormat::JsonObject);
        assert!(
            matches!(plan(&json, &plain, false), Err(Error::Unsupported { param, .. }) if param == "response_format")
        );
        assert!(plan(&json, &plain, true).expect("emulated").emulate_format);
    }

    #[test]
    fn answer_changing_fields_are_refused_others_ignored_out_loud() {
        let plain = info(Capabilities::plain(&["temperature"], &["width"]));
        let req = ChatRequest::user("m", "x")
            .with_temperature(0.1)
            .with_seed(3)
            .with_extra("width", json!(5))
            .with_extra("metadata", json!({}))
            .with_extra("logprobs", json!(false))
            .with_extra("n", json!(1));
        assert_eq!(
            plan(&req, &plain, false).expect("plan").ignored,
            ["seed", "metadata"]
        );
        let req = ChatRequest::user("m", "x").with_extra("logprobs", json!(true));
        assert!(
            matches!(plan(&req, &plain, true), Err(Error::Unsupported { param, .. }) if param == "logprobs")
        );
        let req = req.with_extra("modalities", json!(["text", "audio"]));
        assert!(plan(&req, &info(Capabilities::OPENAI), false).is_ok());
    }
}
