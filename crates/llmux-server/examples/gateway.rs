//! A gateway over one OpenAI-compatible upstream, for trying the gateway out (the real CLI is
//! `llmux serve`):
//!
//! ```sh
//! cargo run -p llmux-server --example gateway -- http://127.0.0.1:8080/v1 127.0.0.1:1337 [GATEWAY_KEY]
//! ```
//!
//! With `LLMUX_GATEWAY_FAULT_URL` set, a second instance named `faulty` (serving the model
//! `fault-model`) points there (used by `tests/python/test_openai_sdk.py`).

use llmux::{Client, ProviderConfig};
use llmux_server::{Gateway, ServerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let upstream = args
        .next()
        .ok_or("usage: gateway UPSTREAM_URL [HOST:PORT] [GATEWAY_KEY]")?;
    let bind = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:1337".into())
        .parse()?;
    let api_key = args.next().map(Into::into);
    let mut builder = Client::builder().ignore_env().provider(
        "openai-compat",
        ProviderConfig::default().with_base_url(upstream),
    );
    if let Ok(fault) = std::env::var("LLMUX_GATEWAY_FAULT_URL") {
        let mut cfg = ProviderConfig::default().with_base_url(fault);
        cfg.models = vec!["fault-model".into()];
        builder = builder.instance("faulty", "openai-compat", cfg);
    }
    let config = ServerConfig {
        bind,
        api_key,
        ..ServerConfig::default()
    };
    let bound = Gateway::new(builder.build()?, config).bind().await?;
    println!("listening on http://{}/v1", bound.local_addr());
    bound.serve(std::future::pending()).await?;
    Ok(())
}
