//! Static model tables (g4f `hf/models.py`; the lists both Hugging Face providers share live in
//! `llmux-hf`) and the merge rule of Hub discovery.

use std::collections::BTreeMap;

use serde_json::Value;

/// Default text model.
pub const DEFAULT_MODEL: &str = llmux_hf::DEFAULT_MODEL;
/// Default image model.
pub const DEFAULT_IMAGE_MODEL: &str = llmux_hf::DEFAULT_IMAGE_MODEL;
/// Default vision model.
pub const DEFAULT_VISION_MODEL: &str = llmux_hf::DEFAULT_VISION_MODEL;

/// The static text models, in g4f's order.
pub const TEXT_MODELS: &[&str] = llmux_hf::TEXT_MODELS;

/// The static image models.
pub const IMAGE_MODELS: &[&str] = llmux_hf::IMAGE_MODELS;

/// Models that accept images (they receive the text of the conversation only).
pub const VISION_MODELS: &[&str] = &[
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "Qwen/Qwen2-VL-7B-Instruct",
];

/// Models first sent to the Together route of the Hugging Face router.
pub const TOGETHER_MODELS: &[&str] = IMAGE_MODELS;

/// Path of the Together image route on the router origin.
pub const TOGETHER_PATH: &str = "/together/v1/images/generations";

/// This provider's own aliases, added to the shared Hub aliases ([`llmux_hf::ALIASES`]): the
/// ones g4f's table keeps for other providers, and `qwen-2.5-72b` pointing at the 32B coder model,
/// as it does in g4f.
pub const OWN_ALIASES: &[(&str, &str)] = &[
    ("qwen-2.5-72b", "Qwen/Qwen2.5-Coder-32B-Instruct"),
    ("qwen-2-vl-7b", "Qwen/Qwen2-VL-7B-Instruct"),
    ("gemma-2-27b", "google/gemma-2-27b-it"),
    ("qwen-2-72b", "Qwen/Qwen2-72B-Instruct"),
    ("qvq-72b", "Qwen/QVQ-72B-Preview"),
    ("sd-3.5", "stabilityai/stable-diffusion-3.5-large"),
];

/// Minimum `trendingScore` of a discovered text model.
pub const TEXT_TRENDING_MIN: f64 = 10.0;
/// Minimum `trendingScore` of a discovered image model.
pub const IMAGE_TRENDING_MIN: f64 = 20.0;

/// Hub listing of warm text-generation models (path and query on the hub origin).
pub const TEXT_LISTING: &str = "/api/models?inference=warm&pipeline_tag=text-generation";
/// Hub listing of text-to-image models.
pub const IMAGE_LISTING: &str = "/api/models?pipeline_tag=text-to-image";

/// Alias → model id: the shared Hub aliases and [`OWN_ALIASES`].
pub(crate) fn aliases() -> BTreeMap<String, String> {
    llmux_hf::aliases(OWN_ALIASES)
}

pub(crate) fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Ids of a Hub listing (JSON array of model summaries) whose `trendingScore` (missing → 0) is at
/// least `min`, in listing order.
fn trending(listing: &Value, min: f64) -> Vec<String> {
    listing
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| {
                    m.get("trendingScore")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0)
                        >= min
                })
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// g4f's discovery merge. `text` / `image` are the bodies of the two Hub listings (`None` when the
/// listing answered a non-2xx status): trending text models, then the vision models, then the
/// static text models not already listed, then the image models (static ones plus trending
/// discovered ones). Unlike g4f, the result has no duplicates.
pub fn merge_discovered(text: Option<&Value>, image: Option<&Value>) -> Vec<String> {
    let mut models: Vec<String> = match text {
        Some(listing) => {
            let extra = trending(listing, TEXT_TRENDING_MIN);
            let rest = TEXT_MODELS
                .iter()
                .filter(|m| !extra.iter().any(|e| e == *m))
                .map(|m| (*m).to_owned());
            let mut v = extra.clone();
            v.extend(owned(VISION_MODELS));
            v.extend(rest);
            v
        }
        None => owned(TEXT_MODELS),
    };
    let mut images = owned(IMAGE_MODELS);
    if let Some(listing) = image {
        for id in trending(listing, IMAGE_TRENDING_MIN) {
            if !images.contains(&id) {
                images.push(id);
            }
        }
    }
    models.extend(images);
    let mut seen = std::collections::HashSet::new();
    models.retain(|m| seen.insert(m.clone()));
    models
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transcript_a() {
        let text = json!([
            {"id": "Qwen/Qwen2.5-72B-Instruct", "trendingScore": 42},
            {"id": "someorg/cold-model", "trendingScore": 3},
            {"id": "someorg/no-score"},
            {"id": "someorg/just-warm", "trendingScore": 10}
        ]);
        let image = json!([
            {"id": "stabilityai/stable-diffusion-3.5-large", "trendingScore": 25},
            {"id": "x/y", "trendingScore": 1},
            {"id": "black-forest-labs/FLUX.1-dev", "trendingScore": 99}
        ]);
        let got = merge_discovered(Some(&text), Some(&image));
        let mut want = vec![
            "Qwen/Qwen2.5-72B-Instruct",
            "someorg/just-warm",
            "meta-llama/Llama-3.2-11B-Vision-Instruct",
            "Qwen/Qwen2-VL-7B-Instruct",
        ];
        // The static list minus the discovered and the (already listed) vision model.
        want.extend(
            TEXT_MODELS[1..]
                .iter()
                .filter(|m| **m != "meta-llama/Llama-3.2-11B-Vision-Instruct"),
        );
        want.extend([
            "black-forest-labs/FLUX.1-dev",
            "black-forest-labs/FLUX.1-schnell",
            "stabilityai/stable-diffusion-3.5-large",
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn aliases_are_the_shared_ones_and_g4f_extras() {
        let map = aliases();
        assert_eq!(map.len(), llmux_hf::ALIASES.len() + OWN_ALIASES.len());
        assert_eq!(map["qwen-2.5-72b"], "Qwen/Qwen2.5-Coder-32B-Instruct");
        assert_eq!(map["sd-3.5"], "stabilityai/stable-diffusion-3.5-large");
        assert_eq!(map["flux-schnell"], "black-forest-labs/FLUX.1-schnell");
    }

    #[test]
    fn failed_listings_keep_static_lists() {
        let got = merge_discovered(None, None);
        let mut want = owned(TEXT_MODELS);
        want.extend(owned(IMAGE_MODELS));
        assert_eq!(got, want);
        // A body that is not a list counts as an empty listing.
        let got = merge_discovered(Some(&json!({"error": "x"})), None);
        assert_eq!(got[..2], owned(VISION_MODELS)[..]);
    }
}
