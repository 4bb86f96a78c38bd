//! [`Gateway`] and [`BoundGateway`]: the listener, the connections and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::routes::{State, handle};

/// Largest request head (request line + headers) accepted, in bytes; larger heads get a 431.
/// (hyper's default of 100 headers at most also applies.)
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The OpenAI-compatible gateway over an [`llmux::Client`]: configure it, [`bind`](Gateway::bind)
/// it, then [`serve`](BoundGateway::serve) until a shutdown signal.
pub struct Gateway {
    state: Arc<State>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("client", &self.state.client)
            .field("config", &self.state.config)
            .finish()
    }
}

impl Gateway {
    /// A gateway answering with `client`.
    pub fn new(client: llmux::Client, config: ServerConfig) -> Self {
        Self {
            state: Arc::new(State::new(client, config)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// Binds the listener on [`ServerConfig::bind`] (port 0 picks a free port; see
    /// [`BoundGateway::local_addr`]).
    pub async fn bind(self) -> io::Result<BoundGateway> {
        let listener = TcpListener::bind(self.state.config.bind).await?;
        let local_addr = listener.local_addr()?;
        Ok(BoundGateway {
            state: self.state,
            listener,
            local_addr,
        })
    }
}

/// A gateway with its listener bound, ready to [`serve`](BoundGateway::serve).
pub struct BoundGateway {
    state: Arc<State>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for BoundGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundGateway")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl BoundGateway {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves HTTP/1.1 (keep-alive) until `shutdown` completes, then shuts down gracefully:
    /// stops accepting, closes idle connections, lets requests and streams in flight finish for
    /// up to [`ServerConfig::shutdown_grace`], then cuts what is left (which cancels the
    /// upstream calls). Returns once every connection is closed.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let BoundGateway {
            state,
            listener,
            local_addr,
        } = self;
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.header_read_timeout)
            .max_header_size(MAX_HEAD_BYTES);
        let graceful = GracefulShutdown::new();
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        // replicas share breaker states through Redis while serving
        let sharing = state
            .redis
            .clone()
            .map(|r| tokio::spawn(crate::breakers::share(state.client.clone(), r)));
        tracing::info!(addr = %local_addr, "llmux gateway listening");
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => {
                    let (socket, _peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // out of file descriptors and the like: back off instead of spinning
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = socket.set_nodelay(true);
                    let state = state.clone();
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let conn = builder.serve_connection(TokioIo::new(socket), service);
                    let conn = graceful.watch(conn);
                    tasks.spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
            }
        }
        drop(listener);
        if let Some(t) = sharing {
            t.abort();
        }
        let open = tasks.len();
        tracing::info!(
            open_connections = open,
            "shutting down: letting open requests finish"
        );
        let grace = state.config.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = tasks.len(),
                "shutdown grace period over: closing the remaining connections"
            );
        }
        tasks.shutdown().await;
        Ok(())
    }
}
