//! Hugging Face specifics shared by the llmux providers of Hugging Face upstreams, declared once:
//!
//! * [`SPACE_RULES`]: how a Space's (or the Hub's) non-2xx answer becomes an error. Core's
//!   status classification is generic; this crate supplies the rule as data
//!   ([`StatusRules::Custom`]). `llmux-gradio` applies it to every Space request.
//! * The Hub model aliases ([`ALIASES`], extended per provider with [`aliases`]) and g4f's static
//!   model lists of `hf/models.py` ([`TEXT_MODELS`], [`IMAGE_MODELS`], the defaults), used by
//!   `huggingchat` and `huggingface-inference`.
//! * The Hub origin [`HUB_URL`].
//!
//! ```
//! use llmux_hf::{ALIASES, aliases};
//!
//! let map = aliases(&[("qwen-2.5-72b", "Qwen/Qwen2.5-72B-Instruct")]);
//! assert_eq!(map.len(), ALIASES.len() + 1);
//! assert_eq!(map["flux-dev"], "black-forest-labs/FLUX.1-dev");
//! ```

use std::collections::BTreeMap;

use llmux_core::http::{MessageRule, StatusRules};

/// The Hub origin (model pages, the models API, Space pages and ZeroGPU tokens).
pub const HUB_URL: &str = "https://huggingface.co";

/// Hugging Face Space rules for non-2xx answers: the message comes from `error`, then `message`
/// (nothing else of the body), and is cut at the first `" <a "` (ZeroGPU quota messages end with
/// an HTML "Upgrade" link).
pub const SPACE_RULES: StatusRules = StatusRules::Custom(MessageRule {
    fields: &["error", "message"],
    cut_at: Some(" <a "),
});

/// Default text model.
pub const DEFAULT_MODEL: &str = "Qwen/Qwen2.5-72B-Instruct";
/// Default vision model.
pub const DEFAULT_VISION_MODEL: &str = "meta-llama/Llama-3.2-11B-Vision-Instruct";
/// Default image model.
pub const DEFAULT_IMAGE_MODEL: &str = "black-forest-labs/FLUX.1-dev";

/// The static text models, in g4f's order (HuggingChat's fallback list, the Inference API's
/// static list).
pub const TEXT_MODELS: &[&str] = &[
    "Qwen/Qwen2.5-72B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "CohereForAI/c4ai-command-r-plus-08-2024",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "Qwen/QwQ-32B",
    "nvidia/Llama-3.1-Nemotron-70B-Instruct-HF",
    "Qwen/Qwen2.5-Coder-32B-Instruct",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "mistralai/Mistral-Nemo-Instruct-2407",
    "microsoft/Phi-3.5-mini-instruct",
];

/// The static image models.
pub const IMAGE_MODELS: &[&str] = &[
    "black-forest-labs/FLUX.1-dev",
    "black-forest-labs/FLUX.1-schnell",
];

/// Alias → model id, as every Hugging Face provider maps it (g4f's `hf/models.py` table).
///
/// `qwen-2.5-72b` is not here: the providers disagree on it (see their own alias tables).
pub const ALIASES: &[(&str, &str)] = &[
    ("llama-3", "meta-llama/Llama-3.3-70B-Instruct"),
    ("llama-3.3-70b", "meta-llama/Llama-3.3-70B-Instruct"),
    ("command-r-plus", "CohereForAI/c4ai-command-r-plus-08-2024"),
    ("deepseek-r1", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
    ("qwq-32b", "Qwen/QwQ-32B"),
    ("nemotron-70b", "nvidia/Llama-3.1-Nemotron-70B-Instruct-HF"),
    ("qwen-2.5-coder-32b", "Qwen/Qwen2.5-Coder-32B-Instruct"),
    ("llama-3.2-11b", "meta-llama/Llama-3.2-11B-Vision-Instruct"),
    ("mistral-nemo", "mistralai/Mistral-Nemo-Instruct-2407"),
    ("phi-3.5-mini", "microsoft/Phi-3.5-mini-instruct"),
    ("flux", "black-forest-labs/FLUX.1-dev"),
    ("flux-dev", "black-forest-labs/FLUX.1-dev"),
    ("flux-schnell", "black-forest-labs/FLUX.1-schnell"),
];

/// A provider's alias map: [`ALIASES`] plus that provider's `own` aliases (which win over the
/// shared ones).
pub fn aliases(own: &[(&str, &str)]) -> BTreeMap<String, String> {
    ALIASES
        .iter()
        .chain(own)
        .map(|(a, t)| ((*a).to_owned(), (*t).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::Error;
    use llmux_core::http::status_error;

    #[test]
    fn shared_aliases_are_unique_and_point_at_listed_models() {
        let map = aliases(&[]);
        assert_eq!(map.len(), ALIASES.len(), "an alias is listed twice");
        for (alias, target) in ALIASES {
            assert!(
                TEXT_MODELS.contains(target) || IMAGE_MODELS.contains(target),
                "{alias} → {target} is not a static model"
            );
        }
        assert!(!map.contains_key("qwen-2.5-72b"));
        assert!(TEXT_MODELS.contains(&DEFAULT_MODEL));
        assert!(TEXT_MODELS.contains(&DEFAULT_VISION_MODEL));
        assert_eq!(IMAGE_MODELS.first(), Some(&DEFAULT_IMAGE_MODEL));
    }

    #[test]
    fn own_aliases_add_and_override() {
        let map = aliases(&[("new", "org/new"), ("flux", "org/other")]);
        assert_eq!(map.len(), ALIASES.len() + 1);
        assert_eq!(map["new"], "org/new");
        assert_eq!(map["flux"], "org/other");
        assert_eq!(map["flux-dev"], "black-forest-labs/FLUX.1-dev");
    }

    #[test]
    fn space_rules_cut_links() {
        let body = r#"{"error":"You have exceeded your GPU quota (60s requested vs. 0s left). <a style=\"x\" href=\"https://huggingface.co/settings/billing\">Upgrade</a> to get more"}"#;
        let e = status_error(
            "phi",
            429,
            Some("application/json"),
            body,
            None,
            SPACE_RULES,
        );
        assert_eq!(
            e.to_string(),
            "phi: rate limited: You have exceeded your GPU quota (60s requested vs. 0s left)."
        );
    }

    #[test]
    fn space_rules_read_error_then_message_only() {
        let e = status_error(
            "s",
            500,
            Some("application/json"),
            r#"{"message":"Queue is closed","detail":"x"}"#,
            None,
            SPACE_RULES,
        );
        assert_eq!(e.to_string(), "s: HTTP 500: Queue is closed");
        let e = status_error(
            "s",
            500,
            Some("application/json"),
            r#"{"detail":"not read"}"#,
            None,
            SPACE_RULES,
        );
        assert!(
            matches!(&e, Error::HttpStatus { message, .. } if message == "Internal Server Error"),
            "{e:?}"
        );
    }
}
