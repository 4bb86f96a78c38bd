//! `llmux image`, `models`, `providers` and `config`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use llmux::{Accumulator, ChatRequest, Message, ModelKind, ModelListing, ProviderConfig, Proxy};
use serde_json::{Value, json};

use crate::exit::{self, CliError};
use crate::term::{Spinner, table};
use crate::{App, env_var, media};

fn print_json(v: &impl serde::Serialize) -> Result<u8, CliError> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot encode JSON: {e}")))?;
    println!("{s}");
    Ok(exit::OK)
}

// ---------------------------------------------------------------------------------------------
// image

#[derive(Args, Debug)]
pub(crate) struct ImageArgs {
    /// Image model [default: `chat.image_model`, else the provider's default image model].
    #[arg(short, long)]
    model: Option<String>,
    /// Provider to use [default: the first routed provider with an image model].
    #[arg(short, long)]
    provider: Option<String>,
    /// Write the image to this file (several images: FILE, FILE-2, …).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Directory for generated file names when `-o` is not given [default: `chat.output_dir`, else `.`].
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    output_dir: Option<PathBuf>,
    /// Time limit in seconds [default: `timeouts.total`, 600].
    #[arg(long, value_name = "SECS", env = "LLMUX_TIMEOUT", hide_env_values = true, value_parser = crate::parse_secs)]
    timeout: Option<Duration>,
    /// What to draw (words are joined); `-` reads it from stdin.
    #[arg(value_name = "PROMPT", required = true)]
    prompt: Vec<String>,
}

/// Runs `llmux image`.
pub(crate) async fn image(app: &App, args: ImageArgs) -> Result<u8, CliError> {
    let client = app.client()?;
    let prompt = image_prompt(&args).await?;
    if prompt.is_empty() {
        return Err(CliError::usage("empty prompt"));
    }
    let cfg = &app.settings.file.chat;
    let (provider, model) = image_target(&client, cfg, &args);
    let mut req = ChatRequest::new(
        model,
        vec![Message::user(format!("Generate a image: {prompt}"))],
    )
    .with_prompt(prompt.clone())
    .with_extra("image_generation", Value::Bool(true));
    req.provider = provider;
    req.timeout = args.timeout;

    let resp = generate_image(app, &client, req).await?;
    if app.verbose > 0 {
        eprintln!("llmux: {} answered with {}", resp.provider, resp.model);
        if !resp.text.is_empty() {
            eprintln!("{}", resp.text.trim_end());
        }
    }
    if resp.images.is_empty() {
        let said = if resp.text.trim().is_empty() {
            String::new()
        } else {
            format!(
                "; it said: {}",
                llmux::core::error::snippet(resp.text.trim(), 200)
            )
        };
        return Err(CliError::new(
            exit::UPSTREAM,
            format!("{} returned no image{said}", resp.provider),
        ));
    }
    let dir = args
        .output_dir
        .clone()
        .or_else(|| cfg.output_dir())
        .unwrap_or_else(|| PathBuf::from("."));
    for (i, img) in resp.images.iter().enumerate() {
        let (mime, data) = media::fetch(&client, &resp.provider, &img.data).await?;
        let path = match &args.output {
            Some(o) => media::write_to(&media::numbered(o, i + 1), &data)?,
            None => media::save_in(&dir, &prompt, &mime, &data).await?,
        };
        println!("{}", path.display());
    }
    Ok(exit::OK)
}

/// The prompt of `llmux image` (`-` reads at most 1 MiB of stdin), trimmed.
async fn image_prompt(args: &ImageArgs) -> Result<String, CliError> {
    Ok(if args.prompt.len() == 1 && args.prompt[0] == "-" {
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(
            &mut tokio::io::AsyncReadExt::take(tokio::io::stdin(), 1024 * 1024),
            &mut s,
        )
        .await
        .map_err(|e| CliError::usage(format!("cannot read the prompt from stdin: {e}")))?;
        s.trim().to_owned()
    } else {
        args.prompt.join(" ").trim().to_owned()
    })
}

/// The provider and model of `llmux image`: as given, else `chat.image_model`, else a provider's
/// default image model.
fn image_target(
    client: &llmux::Client,
    cfg: &crate::config::ChatSection,
    args: &ImageArgs,
) -> (Option<String>, String) {
    let mut provider = args.provider.clone();
    let mut model = args
        .model
        .clone()
        .or_else(|| cfg.image_model.clone())
        .unwrap_or_default();
    if model.is_empty() {
        // like g4f's images.generate: the named provider's default image model, else the first
        // routed provider that has one
        let listings = client.providers();
        let pick = listings.iter().find(|l| {
            l.info.default_image_model.is_some()
                && match &provider {
                    Some(p) => {
                        l.info.name.eq_ignore_ascii_case(p)
                            || l.info.g4f_name.eq_ignore_ascii_case(p)
                    }
                    None => l.enabled,
                }
        });
        if let Some(l) = pick {
            provider = Some(l.info.name.clone());
            model = l.info.default_image_model.clone().unwrap_or_default();
        }
    }
    (provider, model)
}

/// Runs the image call with a spinner, until the answer ends or Ctrl-C.
async fn generate_image(
    app: &App,
    client: &llmux::Client,
    req: ChatRequest,
) -> Result<llmux::ChatResponse, CliError> {
    let mut spinner = Spinner::start(app.tty.stderr, "generating…");
    let mut stream = client.chat(req);
    let mut acc = Accumulator::new();
    let interrupt = crate::chat::ctrl_c();
    tokio::pin!(interrupt);
    let outcome = loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(chunk)) => acc.push(&chunk),
                Some(Err(e)) => break Err(CliError::from(e)),
                None => break Ok(()),
            },
            () = &mut interrupt => break Err(CliError::new(exit::INTERRUPTED, "interrupted")),
        }
    };
    spinner.stop().await;
    outcome?;
    Ok(acc.finish())
}

// ---------------------------------------------------------------------------------------------
// models

#[derive(Args, Debug)]
pub(crate) struct ModelsArgs {
    /// Only this provider's models (asks the provider for its list).
    #[arg(short, long)]
    provider: Option<String>,
    /// Only the built-in lists; ask no upstream.
    #[arg(long)]
    offline: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn listing(info: &llmux::ProviderInfo, enabled: bool, id: String) -> ModelListing {
    ModelListing {
        kind: if info.image_models.contains(&id) {
            ModelKind::Image
        } else {
            ModelKind::Chat
        },
        vision: info.vision_models.contains(&id),
        audio: info.audio_models.contains(&id),
        provider: info.name.clone(),
        enabled,
        id,
    }
}

/// Runs `llmux models`.
pub(crate) async fn models(app: &App, args: ModelsArgs) -> Result<u8, CliError> {
    let client = app.client()?;
    let providers = client.providers();
    let selected: Vec<_> = match &args.provider {
        Some(p) => {
            let found = providers.iter().find(|l| {
                l.info.name.eq_ignore_ascii_case(p) || l.info.g4f_name.eq_ignore_ascii_case(p)
            });
            match found {
                Some(l) => vec![l.clone()],
                // the library's error, with suggestions
                None => {
                    return Err(client.provider_models(p).await.err().map_or_else(
                        || CliError::new(exit::NOT_FOUND, format!("provider `{p}` not found")),
                        CliError::from,
                    ));
                }
            }
        }
        None => providers,
    };
    let list: Vec<ModelListing> = if args.offline {
        selected
            .iter()
            .flat_map(|l| {
                l.info
                    .all_models()
                    .into_iter()
                    .map(|id| listing(&l.info, l.enabled, id))
            })
            .collect()
    } else if let (Some(l), true) = (selected.first(), args.provider.is_some()) {
        client
            .provider_models(&l.info.name)
            .await?
            .into_iter()
            .map(|id| listing(&l.info, l.enabled, id))
            .collect()
    } else {
        client.models().await
    };
    if args.json {
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            let mut input = vec!["text"];
            if m.vision {
                input.push("image");
            }
            if m.audio {
                input.push("audio");
            }
            vec![
                m.id.clone(),
                m.provider.clone(),
                match m.kind {
                    ModelKind::Chat => "chat".into(),
                    ModelKind::Image => "image".into(),
                },
                input.join("+"),
                if m.enabled { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["MODEL", "PROVIDER", "KIND", "INPUT", "ROUTED"], &rows)
    );
    Ok(exit::OK)
}

// ---------------------------------------------------------------------------------------------
// providers

/// Effective provider and instance configurations by name.
fn effective_configs(app: &App) -> BTreeMap<String, (Option<String>, ProviderConfig)> {
    let mut out = BTreeMap::new();
    for (name, cfg) in app
        .settings
        .provider_configs(&app.regs, &env_var, &app.overrides)
    {
        out.insert(name, (None, cfg));
    }
    for (name, kind, cfg) in app.settings.instance_configs(&app.regs, &env_var) {
        out.insert(name, (Some(kind), cfg));
    }
    out
}

fn has_credentials(cfg: Option<&ProviderConfig>) -> bool {
    cfg.is_some_and(|c| c.api_key.is_some() || c.cookies.as_ref().is_some_and(|j| !j.is_empty()))
}

/// Runs `llmux providers`.
pub(crate) fn providers(app: &App, as_json: bool) -> Result<u8, CliError> {
    let client = app.client()?;
    let list = client.providers();
    let configs = effective_configs(app);
    let jar = app.cookies_dir.as_ref().map(llmux_cookies::CookieDir::new);
    let has = |info: &llmux::ProviderInfo| {
        has_credentials(configs.get(&info.name).map(|c| &c.1))
            || crate::cookies::dir_has_cookies(jar.as_ref(), info)
    };
    if as_json {
        let v: Vec<Value> = list
            .iter()
            .map(|l| {
                let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("credentials".into(), Value::Bool(has(&l.info)));
                }
                v
            })
            .collect();
        return print_json(&v);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            let i = &l.info;
            let creds = has(i);
            let auth = match (i.needs_auth, creds) {
                (true, true) => "required, set",
                (true, false) => "required, missing",
                (false, true) => "optional, set",
                (false, false) => "-",
            };
            let mut caps = Vec::new();
            if i.supports_stream {
                caps.push("stream");
            }
            if i.supports_system_message {
                caps.push("system");
            }
            if i.supports_message_history {
                caps.push("history");
            }
            if !i.vision_models.is_empty() || i.default_vision_model.is_some() {
                caps.push("vision");
            }
            if !i.audio_models.is_empty() {
                caps.push("audio");
            }
            if !i.image_models.is_empty() || i.default_image_model.is_some() {
                caps.push("image");
            }
            vec![
                i.name.clone(),
                if i.working { "yes" } else { "no" }.into(),
                if l.enabled { "yes" } else { "no" }.into(),
                auth.into(),
                caps.join(","),
                if i.default_model.is_empty() {
                    "-".into()
                } else {
                    i.default_model.clone()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "NAME",
                "WORKING",
                "ROUTED",
                "AUTH",
                "CAPABILITIES",
                "DEFAULT MODEL"
            ],
            &rows
        )
    );
    Ok(exit::OK)
}

// ---------------------------------------------------------------------------------------------
// config

const MASK: &str = "***";

fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "cookie",
        "auth",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Replaces values under secret-looking keys by `***`, recursively.
fn mask_options(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = if looks_secret(k) {
                        Value::String(MASK.into())
                    } else {
                        mask_options(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(mask_options).collect()),
        other => other.clone(),
    }
}

fn secs(d: Duration) -> Value {
    json!(d.as_secs_f64())
}

fn provider_view(
    kind: Option<&str>,
    cfg: &ProviderConfig,
    listing: Option<&llmux::ProviderListing>,
) -> Value {
    let mut o = serde_json::Map::new();
    if let Some(k) = kind {
        o.insert("kind".into(), json!(k));
    }
    if let Some(l) = listing {
        o.insert("enabled".into(), json!(l.enabled));
    }
    let redact = llmux::core::http::redact_url;
    let mut origins = serde_json::Map::new();
    if let Some(l) = listing {
        for origin in &l.info.origins {
            let url = cfg.origin(&origin.key, &origin.default);
            origins.insert(origin.key.clone(), json!(redact(&url)));
        }
    }
    for (k, url) in &cfg.origins {
        origins.insert(k.clone(), json!(redact(url)));
    }
    if let Some(base) = origins.remove("base") {
        o.insert("base_url".into(), base);
    }
    if !origins.is_empty() {
        o.insert("origins".into(), Value::Object(origins));
    }
    if cfg.api_key.is_some() {
        o.insert("api_key".into(), json!(MASK));
    }
    if let Some(jar) = cfg.cookies.as_ref().filter(|j| !j.is_empty()) {
        let shown: Vec<String> = jar.names().map(|n| format!("{n}={MASK}")).collect();
        o.insert("cookies".into(), json!(shown.join("; ")));
    }
    if let Some(m) = &cfg.default_model {
        o.insert("default_model".into(), json!(m));
    }
    if !cfg.models.is_empty() {
        o.insert("models".into(), json!(cfg.models));
    }
    if !cfg.options.is_empty() {
        o.insert(
            "options".into(),
            mask_options(&Value::Object(cfg.options.clone())),
        );
    }
    Value::Object(o)
}

/// The effective configuration, secrets masked.
fn config_view(app: &App) -> Result<Value, CliError> {
    let s = &app.settings;
    let f = &s.file;
    let mut root = serde_json::Map::new();
    root.insert("priority".into(), json!(s.priority(&app.overrides)));
    let proxy = match s.proxy(&app.overrides).map_err(CliError::usage)? {
        Proxy::Direct => "direct".to_owned(),
        Proxy::FromEnv => "env".to_owned(),
        Proxy::Url(u) => llmux::core::http::redact_url(u.expose()),
    };
    root.insert("proxy".into(), json!(proxy));
    root.insert("shuffle".into(), json!(f.shuffle.unwrap_or(false)));
    root.insert("max_retries".into(), json!(f.max_retries.unwrap_or(1)));
    if let Some(d) = &app.cookies_dir {
        root.insert("cookies_dir".into(), json!(d.display().to_string()));
    }

    let t = f.timeouts.resolve();
    root.insert(
        "timeouts".into(),
        json!({"connect": secs(t.connect), "first_byte": secs(t.first_byte), "idle": secs(t.idle), "total": secs(t.total)}),
    );

    insert_server(&mut root, s)?;
    insert_chat(&mut root, f);
    insert_providers(&mut root, app)?;
    Ok(Value::Object(root))
}

/// The gateway's part of [`config_view`]: `server`, then `keys`, `redis` and `cache` when set.
fn insert_server(
    root: &mut serde_json::Map<String, Value>,
    s: &crate::config::Settings,
) -> Result<(), CliError> {
    let server = crate::serve::server_config(s, &crate::serve::ServeFlags::from_env())?;
    let mut sv = serde_json::Map::new();
    sv.insert("bind".into(), json!(server.bind.to_string()));
    if server.api_key.is_some() {
        sv.insert("api_key".into(), json!(MASK));
    }
    sv.insert("max_body_bytes".into(), json!(server.max_body_bytes));
    sv.insert(
        "allow_remote_media".into(),
        json!(server.allow_remote_media),
    );
    sv.insert("cors".into(), json!(server.cors));
    sv.insert(
        "header_read_timeout".into(),
        secs(server.header_read_timeout),
    );
    if let Some(p) = &server.default_provider {
        sv.insert("default_provider".into(), json!(p));
    }
    sv.insert("shutdown_grace".into(), secs(server.shutdown_grace));
    sv.insert(
        "responses_store_size".into(),
        json!(server.responses_store_size),
    );
    sv.insert(
        "responses_store_ttl".into(),
        secs(server.responses_store_ttl),
    );
    root.insert("server".into(), Value::Object(sv));
    if !server.keys.is_empty() {
        let keys: Vec<Value> = server
            .keys
            .iter()
            .map(|k| {
                let mut v = json!({
                    "name": k.name, "key": MASK, "models": k.models, "providers": k.providers,
                    "rpm": k.rpm, "tpm": k.tpm, "concurrency": k.concurrency,
                    "expires": k.expires.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| llmux_cookies::time::format_utc(d.as_secs() as i64)),
                    "admin": k.admin,
                });
                if let Some(m) = v.as_object_mut() {
                    m.retain(|_, v| !v.is_null());
                }
                v
            })
            .collect();
        root.insert("keys".into(), Value::Array(keys));
    }
    if let Some(r) = &server.redis {
        root.insert(
            "redis".into(),
            json!({"url": MASK, "timeout": secs(r.timeout), "limits_fail_open": r.limits_fail_open}),
        );
    }
    if let Some(c) = &server.cache {
        root.insert(
            "cache".into(),
            json!({"models": c.enabled_models, "ttl": secs(c.ttl), "max_bytes": c.max_bytes}),
        );
    }
    Ok(())
}

/// The `chat` and `aliases` sections of [`config_view`], when set.
fn insert_chat(root: &mut serde_json::Map<String, Value>, f: &crate::config::FileConfig) {
    let c = &f.chat;
    let mut chat = serde_json::Map::new();
    for (k, v) in [
        ("model", &c.model),
        ("provider", &c.provider),
        ("image_model", &c.image_model),
        ("system", &c.system),
    ] {
        if let Some(v) = v {
            chat.insert(k.into(), json!(v));
        }
    }
    if let Some(d) = &c.output_dir {
        chat.insert("output_dir".into(), json!(d.display().to_string()));
    }
    if !chat.is_empty() {
        root.insert("chat".into(), Value::Object(chat));
    }
    if !f.aliases.is_empty() {
        root.insert("aliases".into(), json!(f.aliases));
    }
}

/// The `providers` (and `instances`) of [`config_view`], as the client sees them.
fn insert_providers(root: &mut serde_json::Map<String, Value>, app: &App) -> Result<(), CliError> {
    let client = app.client()?;
    let listings = client.providers();
    let find = |name: &str| listings.iter().find(|l| l.info.name == name);
    let mut providers = serde_json::Map::new();
    let mut instances = serde_json::Map::new();
    for (name, (kind, cfg)) in effective_configs(app) {
        let view = provider_view(kind.as_deref(), &cfg, find(&name));
        if kind.is_some() {
            instances.insert(name, view);
        } else {
            providers.insert(name, view);
        }
    }
    root.insert("providers".into(), Value::Object(providers));
    if !instances.is_empty() {
        root.insert("instances".into(), Value::Object(instances));
    }
    Ok(())
}

/// Runs `llmux config`.
pub(crate) fn show_config(app: &App, as_json: bool) -> Result<u8, CliError> {
    let view = config_view(app)?;
    let source = match (&app.settings.path, &app.settings.looked_at) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(p)) => format!("none ({} does not exist)", p.display()),
        (None, None) => "none".to_owned(),
    };
    if as_json {
        return print_json(&json!({"file": source, "config": view}));
    }
    let text = toml::to_string(&view)
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot render TOML: {e}")))?;
    println!("# effective llmux configuration (flags > environment > file; secrets masked)");
    println!("# config file: {source}");
    print!("{text}");
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_masking() {
        let v = json!({"access_token": "t0k", "nested": {"password": "pw", "size": 3}, "list": [{"apiKey": "k"}]});
        let m = mask_options(&v);
        assert_eq!(
            m,
            json!({"access_token": "***", "nested": {"password": "***", "size": 3}, "list": [{"apiKey": "***"}]})
        );
    }
}
