//! The answer stream of `POST /conversation/<id>`: JSON lines ("message updates") → chunks.

use llmux_core::chunk::clean_source_url;
use llmux_core::{Chunk, Error, FinishReason, Image, MediaData, Reasoning, Result, Source};
use serde_json::{Map, Value};

/// What one update line means for the caller.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Chunks to pass on (possibly none), then keep reading.
    Emit(Vec<Chunk>),
    /// The final chunks; stop reading (the rest is chat-ui's whitespace padding).
    Finish(Vec<Chunk>),
}

/// Folds update lines into chunks; keeps the web-search sources until `finalAnswer`.
#[derive(Debug)]
pub(crate) struct Updates {
    provider: String,
    /// `{app}/conversation/<id>/output/` — prefix of generated files.
    output_base: String,
    /// Alt text of generated images.
    alt: String,
    sources: Vec<Source>,
}

fn no_nul(s: &str) -> String {
    s.replace('\0', "")
}

/// `link` (chat-ui), `url` or `uri` (newer `webSources`), cleaned of `utm_source`.
fn sources_of(list: &[Value]) -> Vec<Source> {
    list.iter()
        .filter_map(|s| {
            let url = ["link", "url", "uri"]
                .iter()
                .find_map(|k| s.get(*k).and_then(Value::as_str))
                .filter(|u| !u.is_empty())?;
            Some(Source {
                url: clean_source_url(url),
                title: s
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect()
}

/// Percent-encodes everything but `[A-Za-z0-9_-]` (a path segment from upstream data; dots too,
/// so that `..` cannot climb out of the output folder).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Updates {
    pub(crate) fn new(provider: &str, output_base: String, alt: String) -> Self {
        Self {
            provider: provider.to_owned(),
            output_base,
            alt,
            sources: Vec::new(),
        }
    }

    fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
        obj.get(key).and_then(Value::as_str)
    }

    /// Handles one parsed line.
    pub(crate) fn step(&mut self, line: &Value) -> Result<Step> {
        let Some(obj) = line.as_object() else {
            return Err(Error::protocol(
                &self.provider,
                "message update is not a JSON object",
                &line.to_string(),
            ));
        };
        let Some(kind) = obj.get("type") else {
            return Err(Error::protocol(
                &self.provider,
                "message update without `type`",
                &line.to_string(),
            ));
        };
        let mut out = Vec::new();
        match kind.as_str().unwrap_or_default() {
            "stream" => {
                let token = no_nul(Self::str_field(obj, "token").unwrap_or_default());
                if !token.is_empty() {
                    out.push(Chunk::Text(token));
                }
            }
            "reasoning" => {
                let token = Self::str_field(obj, "token").map(no_nul);
                let status = Self::str_field(obj, "status").map(no_nul);
                if token.as_deref().is_some_and(|t| !t.is_empty()) || status.is_some() {
                    out.push(Chunk::Reasoning(Reasoning {
                        token: token.filter(|t| !t.is_empty()),
                        status,
                        label: None,
                    }));
                }
            }
            "title" => {
                if let Some(t) = Self::str_field(obj, "title") {
                    out.push(Chunk::Title(no_nul(t).trim().to_owned()));
                }
            }
            "webSearch" => {
                if let Some(list) = obj.get("sources").and_then(Value::as_array) {
                    self.sources = sources_of(list);
                }
            }
            "file" => {
                let sha = Self::str_field(obj, "sha")
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        Error::protocol(
                            &self.provider,
                            "file update without `sha`",
                            &line.to_string(),
                        )
                    })?;
                out.push(Chunk::Images(vec![Image {
                    data: MediaData::Url(format!("{}{}", self.output_base, path_segment(sha))),
                    alt: self.alt.clone(),
                    needs_auth: true,
                }]));
            }
            "status" if Self::str_field(obj, "status") == Some("error") => {
                let message = Self::str_field(obj, "message")
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .unwrap_or("the server reported an error without a message");
                return Err(Error::Upstream {
                    provider: self.provider.clone(),
                    message: llmux_core::error::snippet(message, 300),
                });
            }
            "finalAnswer" => {
                if self.sources.is_empty() {
                    if let Some(list) = obj.get("webSources").and_then(Value::as_array) {
                        self.sources = sources_of(list);
                    }
                }
                if !self.sources.is_empty() {
                    out.push(Chunk::Sources(std::mem::take(&mut self.sources)));
                }
                out.push(Chunk::Finish(FinishReason::Stop));
                return Ok(Step::Finish(out));
            }
            // `status` (started, keepAlive, finished), `tool`, other `webSearch` updates, …
            other => {
                tracing::trace!(provider = %self.provider, update = other, "ignored update");
            }
        }
        Ok(Step::Emit(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn updates() -> Updates {
        Updates::new(
            "huggingchat",
            "http://h/chat/conversation/c1/output/".into(),
            "a fox".into(),
        )
    }

    #[test]
    fn maps_every_update() {
        let mut u = updates();
        let emit = |u: &mut Updates, v: Value| u.step(&v).expect("step");
        assert_eq!(
            emit(&mut u, json!({"type":"status","status":"started"})),
            Step::Emit(vec![])
        );
        assert_eq!(
            emit(
                &mut u,
                json!({"type":"stream","token":"Frank\u{0}\u{0}\u{0}"})
            ),
            Step::Emit(vec![Chunk::text("Frank")])
        );
        assert_eq!(
            emit(&mut u, json!({"type":"stream","token":"\u{0}\u{0}"})),
            Step::Emit(vec![])
        );
        assert_eq!(
            emit(
                &mut u,
                json!({"type":"reasoning","subtype":"status","status":"Thinking"})
            ),
            Step::Emit(vec![Chunk::Reasoning(Reasoning::status("Thinking"))])
        );
        assert_eq!(
            emit(
                &mut u,
                json!({"type":"reasoning","subtype":"stream","token":"hmm"})
            ),
            Step::Emit(vec![Chunk::Reasoning(Reasoning::token("hmm"))])
        );
        assert_eq!(
            emit(&mut u, json!({"type":"title","title":"Author of Dune"})),
            Step::Emit(vec![Chunk::Title("Author of Dune".into())])
        );
        assert_eq!(
            emit(
                &mut u,
                json!({"type":"file","name":"image.png","sha":"ab12","mime":"image/png"})
            ),
            Step::Emit(vec![Chunk::Images(vec![Image {
                data: MediaData::Url("http://h/chat/conversation/c1/output/ab12".into()),
                alt: "a fox".into(),
                needs_auth: true,
            }])])
        );
        emit(
            &mut u,
            json!({"type":"webSearch","subtype":"sources","sources":[
                {"link":"https://en.wikipedia.org/wiki/Dune_(novel)?utm_source=x","title":"Dune"},
                {"title":"no link"}]}),
        );
        assert_eq!(
            emit(&mut u, json!({"type":"tool","subtype":"call"})),
            Step::Emit(vec![])
        );
        assert_eq!(
            emit(
                &mut u,
                json!({"type":"finalAnswer","text":"Frank Herbert.","interrupted":false})
            ),
            Step::Finish(vec![
                Chunk::Sources(vec![Source {
                    url: "https://en.wikipedia.org/wiki/Dune_(novel)".into(),
                    title: "Dune".into()
                }]),
                Chunk::Finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn errors() {
        let mut u = updates();
        let e = u.step(&json!({"token": "x"})).expect_err("no type");
        assert!(matches!(e, Error::Protocol { .. }), "{e}");
        assert!(u.step(&json!([1])).is_err());
        let e = u
            .step(&json!({"type":"status","status":"error","message":"Model overloaded"}))
            .expect_err("error status");
        assert_eq!(e.to_string(), "huggingchat: Model overloaded");
        assert!(matches!(
            u.step(&json!({"type":"file"})),
            Err(Error::Protocol { .. })
        ));
    }

    #[test]
    fn final_answer_web_sources_and_escaping() {
        let mut u = updates();
        let step = u
            .step(&json!({"type":"finalAnswer","webSources":[{"uri":"https://a.b/c","title":"C"}]}))
            .expect("step");
        assert!(matches!(step, Step::Finish(ref c) if c.len() == 2));
        assert_eq!(path_segment("ab/../c d"), "ab%2F%2E%2E%2Fc%20d");
    }
}
