//! llmux provider `amigochat`.
//!
//! ```
//! use llmux_core::Provider;
//! let p = llmux_provider_amigochat::Amigochat::new(llmux_core::ProviderConfig::named("amigochat"));
//! assert_eq!(p.info().name, "amigochat");
//! ```

use std::sync::Arc;

use llmux_core::{ChatRequest, ChatStream, Chunk, Context, Provider, ProviderConfig, ProviderInfo, Registration};

/// Provider name.
pub const NAME: &str = "amigochat";

/// The `amigochat` provider.
pub struct Amigochat {
    info: ProviderInfo,
    #[allow(dead_code)]
    config: ProviderConfig,
}

impl Amigochat {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let info = ProviderInfo {
            name: NAME.into(),
            g4f_name: "Amigochat".into(),
            label: "Amigochat".into(),
            working: false,
            supports_stream: true,
            ..ProviderInfo::default()
        };
        Self { info, config }
    }
}

impl Provider for Amigochat {
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
    Registration { name: NAME, g4f_name: "Amigochat", extra_origins: &[], build: |cfg| Arc::new(Amigochat::new(cfg)) }
}
