//! llmux provider `flowgpt`.
//!
//! ```
//! use llmux_core::Provider;
//! let p = llmux_provider_flowgpt::Flowgpt::new(llmux_core::ProviderConfig::named("flowgpt"));
//! assert_eq!(p.info().name, "flowgpt");
//! ```

use std::sync::Arc;

use llmux_core::{ChatRequest, ChatStream, Chunk, Context, Provider, ProviderConfig, ProviderInfo, Registration};

/// Provider name.
pub const NAME: &str = "flowgpt";

/// The `flowgpt` provider.
pub struct Flowgpt {
    info: ProviderInfo,
    #[allow(dead_code)]
    config: ProviderConfig,
}

impl Flowgpt {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let info = ProviderInfo {
            name: NAME.into(),
            g4f_name: "Flowgpt".into(),
            label: "Flowgpt".into(),
            working: false,
            supports_stream: true,
            ..ProviderInfo::default()
        };
        Self { info, config }
    }
}

impl Provider for Flowgpt {
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
    Registration { name: NAME, g4f_name: "Flowgpt", extra_origins: &[], build: |cfg| Arc::new(Flowgpt::new(cfg)) }
}
