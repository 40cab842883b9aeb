//! The HTTP endpoints: /metrics, /healthz (the engine loop is alive), /readyz (stores synced).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::store::Synced;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    synced: watch::Receiver<Synced>,
    alive: watch::Receiver<bool>,
}

/// Serves until the process ends. `alive` turns false when the engine stops.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    synced: watch::Receiver<Synced>,
    alive: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            metrics,
            synced,
            alive,
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app).await
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if *state.alive.borrow() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "engine stopped")
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let synced = *state.synced.borrow();
    if synced.all() {
        (StatusCode::OK, "ok".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stores not synced yet: {synced:?}"),
        )
    }
}
