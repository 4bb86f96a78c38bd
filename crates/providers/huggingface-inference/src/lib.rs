//! llmux provider `huggingface-inference`.
//!
//! ```
//! use llmux_core::Provider;
//! let p = llmux_provider_huggingface_inference::HuggingfaceInference::new(llmux_core::ProviderConfig::named("huggingface-inference"));
//! assert_eq!(p.info().name, "huggingface-inference");
//! ```

use std::sync::Arc;

use llmux_core::{ChatRequest, ChatStream, Chunk, Context, Provider, ProviderConfig, ProviderInfo, Registration};

/// Provider name.
pub const NAME: &str = "huggingface-inference";

/// The `huggingface-inference` provider.
pub struct HuggingfaceInference {
    info: ProviderInfo,
    #[allow(dead_code)]
    config: ProviderConfig,
}

impl HuggingfaceInference {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let info = ProviderInfo {
            name: NAME.into(),
            g4f_name: "HuggingfaceInference".into(),
            label: "HuggingfaceInference".into(),
            working: false,
            supports_stream: true,
            ..ProviderInfo::default()
        };
        Self { info, config }
    }
}

impl Provider for HuggingfaceInference {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, request: ChatRequest, _ctx: Context) -> ChatStream {
        Box::pin(llmux_core::async_stream::try_stream! {
            yield Chunk::text(llmux_core::prompt::last_user_message(&request.messages));
        })
    }
}

llmux_core::inventory::submit! {
    Registration { name: NAME, g4f_name: "HuggingfaceInference", extra_origins: &[], build: |cfg| Arc::new(HuggingfaceInference::new(cfg)) }
}
