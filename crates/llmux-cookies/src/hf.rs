//! The Hugging Face token, by the Hugging Face CLI's conventions.

use std::path::PathBuf;

use llmux_core::Secret;

/// The Hugging Face token: `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`), else the file
/// `HF_TOKEN_PATH`, else `$HF_HOME/token` (`HF_HOME` defaults to
/// `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`), as `huggingface-cli login`
/// writes it. `env` looks up environment variables.
pub fn hf_token(env: &dyn Fn(&str) -> Option<String>) -> Option<Secret> {
    let set = |k: &str| {
        env(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(t) = set("HF_TOKEN").or_else(|| set("HUGGING_FACE_HUB_TOKEN")) {
        return Some(Secret::new(t));
    }
    let path = set("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
        let home = set("HF_HOME").map(PathBuf::from).or_else(|| {
            set("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|c| c.join("huggingface"))
        })?;
        Some(home.join("token"))
    })?;
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| Secret::new(token))
}
