//! llmux provider `microsoft-phi-4`.
//!
//! ```
//! use llmux_core::Provider;
//! let p = llmux_provider_microsoft_phi_4::MicrosoftPhi4::new(llmux_core::ProviderConfig::named("microsoft-phi-4"));
//! assert_eq!(p.info().name, "microsoft-phi-4");
//! ```

use std::sync::Arc;

use llmux_core::{ChatRequest, ChatStream, Chunk, Context, Provider, ProviderConfig, ProviderInfo, Registration};

/// Provider name.
pub const NAME: &str = "microsoft-phi-4";

/// The `microsoft-phi-4` provider.
pub struct MicrosoftPhi4 {
    info: ProviderInfo,
    #[allow(dead_code)]
    config: ProviderConfig,
}

impl MicrosoftPhi4 {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let info = ProviderInfo {
            name: NAME.into(),
            g4f_name: "MicrosoftPhi4".into(),
            label: "MicrosoftPhi4".into(),
            working: false,
            supports_stream: true,
            ..ProviderInfo::default()
        };
        Self { info, config }
    }
}

impl Provider for MicrosoftPhi4 {
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
    Registration { name: NAME, g4f_name: "MicrosoftPhi4", extra_origins: &[], build: |cfg| Arc::new(MicrosoftPhi4::new(cfg)) }
}
