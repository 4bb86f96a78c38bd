//! llmux provider `huggingchat`.
//!
//! ```
//! use llmux_core::Provider;
//! let p = llmux_provider_huggingchat::Huggingchat::new(llmux_core::ProviderConfig::named("huggingchat"));
//! assert_eq!(p.info().name, "huggingchat");
//! ```

use std::sync::Arc;

use llmux_core::{ChatRequest, ChatStream, Chunk, Context, Provider, ProviderConfig, ProviderInfo, Registration};

/// Provider name.
pub const NAME: &str = "huggingchat";

/// The `huggingchat` provider.
pub struct Huggingchat {
    info: ProviderInfo,
    #[allow(dead_code)]
    config: ProviderConfig,
}

impl Huggingchat {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let info = ProviderInfo {
            name: NAME.into(),
            g4f_name: "Huggingchat".into(),
            label: "Huggingchat".into(),
            working: false,
            supports_stream: true,
            ..ProviderInfo::default()
        };
        Self { info, config }
    }
}

impl Provider for Huggingchat {
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
    Registration { name: NAME, g4f_name: "Huggingchat", extra_origins: &[], build: |cfg| Arc::new(Huggingchat::new(cfg)) }
}
