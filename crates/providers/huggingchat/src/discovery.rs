//! Model discovery: the app URL, the chat page's inline models or `/api/v2/models`, and the
//! default models.

use llmux_core::{ChatRequest, Context, Error, Result};
use serde_json::Value;

use crate::{
    DEFAULT_MODEL, DEFAULT_VISION_MODEL, FALLBACK_TEXT_MODELS, IMAGE_MODELS, Inner, MAX_DOCUMENT,
    devalue, has_path, lock, strings,
};

/// Which generation of chat-ui routes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// The chat page's inline models and `__data.json` (chat-ui until mid-2025).
    V1,
    /// `/api/v2/models` and `/api/v2/conversations/<id>`.
    V2,
}

/// A discovered model: id and whether it accepts images.
pub(crate) type Found = Vec<(String, bool)>;

impl Inner {
    /// The chat-ui app URL: the configured base, or for a bare origin `<origin>/chat` when that
    /// page exists and the origin itself otherwise.
    pub(crate) async fn app(&self, ctx: &Context) -> Result<String> {
        self.app
            .get_or_try_init(|| async {
                if has_path(&self.base) {
                    return Ok(self.base.clone());
                }
                let probe = format!("{}/chat", self.base);
                let resp = ctx
                    .http
                    .get(&probe)
                    .provider(self.name())
                    .cookies(&self.jar(None))
                    .max_body(MAX_DOCUMENT)
                    .send()
                    .await?;
                if resp.status().as_u16() == 404 {
                    return Ok(self.base.clone());
                }
                if resp.status().is_success() {
                    if let Ok(page) = resp.text().await {
                        *lock(&self.page) = Some(page);
                    }
                }
                Ok(probe)
            })
            .await
            .cloned()
    }

    pub(crate) fn api(&self) -> Api {
        self.api_choice.or(*lock(&self.detected)).unwrap_or(Api::V1)
    }

    /// The chat page (reusing the one fetched by the mount probe).
    pub(crate) async fn page(&self, ctx: &Context, app: &str) -> Result<String> {
        if let Some(page) = lock(&self.page).take() {
            return Ok(page);
        }
        let resp = ctx
            .http
            .get(app)
            .provider(self.name())
            .cookies(&self.jar(None))
            .max_body(MAX_DOCUMENT)
            .send()
            .await?;
        self.checked(resp).await?.text().await
    }

    pub(crate) fn page_models(&self, html: &str) -> Result<devalue::InlineModels> {
        devalue::inline_models(html).map_err(|e| {
            Error::protocol(
                self.name(),
                format!("cannot read the chat page's models: {e}"),
                "",
            )
        })
    }

    /// Models from `GET /api/v2/models` (`{"json": [...]}`).
    pub(crate) async fn v2_models(&self, ctx: &Context, app: &str) -> Result<Found> {
        let resp = ctx
            .http
            .get(format!("{app}/api/v2/models"))
            .provider(self.name())
            .cookies(&self.jar(None))
            .max_body(MAX_DOCUMENT)
            .send()
            .await?;
        let v: Value = self.checked(resp).await?.json().await?;
        let list = v
            .get("json")
            .unwrap_or(&v)
            .as_array()
            .filter(|l| l.iter().all(|m| m.get("id").is_some_and(Value::is_string)))
            .ok_or_else(|| {
                Error::protocol(
                    self.name(),
                    "`/api/v2/models` is not a model list",
                    &v.to_string(),
                )
            })?;
        Ok(models_of(list))
    }

    /// Discovered text model ids (cached on success).
    pub(crate) async fn discover(&self, ctx: &Context) -> Result<Vec<String>> {
        self.models
            .get_or_fetch(|| async {
                let app = self.app(ctx).await?;
                let found = match self.api_choice {
                    Some(Api::V1) => {
                        models_of(&self.page_models(&self.page(ctx, &app).await?)?.models)
                    }
                    Some(Api::V2) => self.v2_models(ctx, &app).await?,
                    None => self.detect(ctx, &app).await?,
                };
                *lock(&self.vision) = found
                    .iter()
                    .filter(|(_, mm)| *mm)
                    .map(|(id, _)| id.clone())
                    .collect();
                Ok(found.into_iter().map(|(id, _)| id).collect())
            })
            .await
    }

    /// Auto mode: the chat page's `models:[…],oldModels:` literal means v1; otherwise
    /// `/api/v2/models` answering means v2; otherwise any models list in the page means v1.
    pub(crate) async fn detect(&self, ctx: &Context, app: &str) -> Result<Found> {
        let page = self.page(ctx, app).await;
        let inline = match &page {
            Ok(html) => self.page_models(html),
            Err(e) => Err(e.clone()),
        };
        if let Some(found) = inline.as_ref().ok().filter(|f| f.exact) {
            *lock(&self.detected) = Some(Api::V1);
            return Ok(models_of(&found.models));
        }
        match self.v2_models(ctx, app).await {
            Ok(found) => {
                *lock(&self.detected) = Some(Api::V2);
                Ok(found)
            }
            Err(e) => match inline {
                Ok(found) => {
                    *lock(&self.detected) = Some(Api::V1);
                    Ok(models_of(&found.models))
                }
                Err(_) => Err(e),
            },
        }
    }

    /// Text models known for this call: discovered (else the fallback list) plus configured ones;
    /// `true` when they were discovered.
    pub(crate) async fn text_models(&self, ctx: &Context) -> (Vec<String>, bool) {
        let (mut list, discovered) = match self.discover(ctx).await {
            Ok(list) => (list, true),
            Err(e) => {
                tracing::debug!(provider = %self.name(), error = %e, "model discovery failed; using the fallback list");
                (strings(FALLBACK_TEXT_MODELS), false)
            }
        };
        for m in &self.config.models {
            if !list.contains(m) {
                list.push(m.clone());
            }
        }
        (list, discovered)
    }

    /// The model of this call: the requested one resolved against the known models, else the
    /// default text model, or the default vision model when files are attached.
    pub(crate) fn model_for(
        &self,
        req: &ChatRequest,
        no_files: bool,
        text_models: &[String],
        discovered: bool,
    ) -> Result<String> {
        Ok(if req.model.trim().is_empty() {
            if no_files {
                self.default_text_model(text_models, discovered)
            } else {
                self.default_vision_model(text_models, discovered)
            }
        } else {
            let mut known = text_models.to_vec();
            known.extend(strings(IMAGE_MODELS));
            self.info.resolve_model(req.model.trim(), Some(&known))?
        })
    }

    /// The default text model: configured, else g4f's default unless the server lists other
    /// models only, then the server's first model.
    pub(crate) fn default_text_model(&self, text: &[String], discovered: bool) -> String {
        if let Some(m) = &self.config.default_model {
            return m.clone();
        }
        match text.first() {
            Some(first) if discovered && !text.iter().any(|m| m == DEFAULT_MODEL) => first.clone(),
            _ => DEFAULT_MODEL.to_owned(),
        }
    }

    pub(crate) fn default_vision_model(&self, text: &[String], discovered: bool) -> String {
        if !discovered || text.iter().any(|m| m == DEFAULT_VISION_MODEL) {
            return DEFAULT_VISION_MODEL.to_owned();
        }
        lock(&self.vision)
            .first()
            .cloned()
            .unwrap_or_else(|| DEFAULT_VISION_MODEL.to_owned())
    }
}

/// `(id, multimodal)` of each model object.
pub(crate) fn models_of(list: &[Value]) -> Found {
    list.iter()
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_owned();
            let mm = m
                .get("multimodal")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Some((id, mm))
        })
        .collect()
}
