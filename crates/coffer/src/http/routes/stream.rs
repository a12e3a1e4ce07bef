//! The WebSocket stream `GET /v1/stream`: the caller's own events (balance changes, new
//! operations, payments, alerts) as CloudEvents JSON text frames, as they are relayed.
//!
//! Authentication: `Authorization: Bearer <access token>`, or `?ticket=` from `POST
//! /v1/stream/tickets` (single use, 30 seconds; for browsers, which cannot set headers on
//! a WebSocket). A customer holds at most `COFFER_STREAM_CONNECTIONS_PER_CUSTOMER_MAX`
//! streams at once (`limits::streams`; across all nodes when Redis is configured).
//! `?after=<event id>` resumes after that event: the missed events are replayed from the
//! outbox first, then the live ones follow, without gaps or repeats.
//!
//! Bounded: the server pings every heartbeat and closes a client that answered neither of
//! the last two (close code 4001); a client that falls behind the shared live buffer is
//! closed with code 4002 and the id to resume from, so a slow or stalled client can never
//! make the server hold more than the shared buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::{
        State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::{get, post},
};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::events::{bus::Delivered, feed::Feed};
use crate::http::caller::{AuthUser, bearer};
use crate::http::{AppState, error::ApiError, extract::Query};
use crate::limits::streams::TICKET_TTL;

/// Events replayed per outbox read when resuming.
const REPLAY_PAGE: u32 = 500;
/// Events a resume may replay at most; further back, the client must re-read state.
const REPLAY_MAX: usize = 10_000;
/// Close codes (application range).
const CLOSE_HEARTBEAT: u16 = 4001;
const CLOSE_LAGGED: u16 = 4002;
const CLOSE_REPLAY_TOO_LONG: u16 = 4003;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/stream", get(stream)).route("/v1/stream/tickets", post(create_ticket))
}

/// What the stream reads, and how.
#[derive(Debug)]
pub struct StreamSettings {
    pub feed: Feed,
    pub heartbeat: Duration,
}

/// A stream ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    /// Pass as `?ticket=` to `GET /v1/stream` within `expires_in` seconds; valid once.
    pub ticket: String,
    pub expires_in: u64,
}

/// A ticket to open the stream without an `Authorization` header (browsers).
#[utoipa::path(post, path = "/v1/stream/tickets", tag = "events", security(("access_token" = [])),
    responses((status = 201, body = Ticket)))]
async fn create_ticket(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<(StatusCode, axum::Json<Ticket>), ApiError> {
    let ticket = state
        .limits
        .streams
        .issue_ticket(user.customer_id)
        .await
        .ok_or_else(|| ApiError::Unavailable(anyhow::anyhow!("too many outstanding stream tickets")))?;
    Ok((StatusCode::CREATED, axum::Json(Ticket { ticket, expires_in: TICKET_TTL.as_secs() })))
}

/// Where to start and how to authenticate.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// A ticket from `POST /v1/stream/tickets`, instead of the Authorization header.
    pub ticket: Option<String>,
    /// Resume after this event id (replays what was missed).
    pub after: Option<Uuid>,
}

/// The caller's events over a WebSocket (CloudEvents JSON text frames).
#[utoipa::path(get, path = "/v1/stream", tag = "events", params(StreamQuery), security(("access_token" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 404, description = "`after` names no event the outbox still holds", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The customer has as many streams open as allowed (`too_many_streams`)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn stream(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let customer_id = match &query.ticket {
        Some(ticket) => state.limits.streams.redeem_ticket(ticket).await.ok_or(ApiError::Unauthorized)?,
        None => {
            let token = bearer(&headers).ok_or(ApiError::Unauthorized)?;
            state.identity.verify_access_token(token).ok_or(ApiError::Unauthorized)?.sub
        }
    };
    open(&state, customer_id, query.after, upgrade).await
}

/// Streams `customer_id`'s events over the upgraded connection, resuming after the event
/// `after` when given: the one stream behind `GET /v1/stream` and the web console's live
/// updates, whichever way the caller was authenticated.
pub async fn open(
    state: &AppState,
    customer_id: Uuid,
    after: Option<Uuid>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let after_seq = match after {
        None => None,
        Some(id) => Some(state.stream.feed.position_of(id).await?.ok_or_else(|| ApiError::NotFound {
            code: "event_not_found",
            detail:
                "`after` names no event the outbox still holds; re-read state and connect without it".into(),
        })?),
    };
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::rejected(StatusCode::BAD_REQUEST, "websocket_upgrade_required", rejection.body_text())
    })?;
    let place = state.limits.streams.open(customer_id).await.ok_or_else(|| {
        ApiError::rejected(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            "this customer has as many event streams open as allowed; close one first",
        )
    })?;
    // Subscribed before the replay reads the outbox, so nothing falls between the two.
    let live = state.stream.feed.subscribe();
    let feed = state.stream.feed.clone();
    let heartbeat = state.stream.heartbeat;
    Ok(upgrade.max_message_size(4 * 1024).on_upgrade(move |socket| async move {
        let _gauge = ConnectionGauge::open();
        let _place = place;
        let session = Session { socket, customer_id, last_seq: after_seq.unwrap_or(0), last_id: after };
        session.run(feed, live, after_seq.is_some(), heartbeat).await;
    }))
}

/// Counts open streams in `coffer_websocket_connections`.
struct ConnectionGauge;

impl ConnectionGauge {
    fn open() -> Self {
        metrics::gauge!("coffer_websocket_connections").increment(1.0);
        Self
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!("coffer_websocket_connections").decrement(1.0);
    }
}

struct Session {
    socket: WebSocket,
    customer_id: Uuid,
    /// The outbox position of the last event sent (or resumed from).
    last_seq: u64,
    last_id: Option<Uuid>,
}

/// Why a session ended early.
enum End {
    Gone,
    Close(u16, String),
}

impl Session {
    async fn run(
        mut self,
        feed: Feed,
        mut live: tokio::sync::broadcast::Receiver<Arc<Delivered>>,
        resume: bool,
        heartbeat: Duration,
    ) {
        let ended = async {
            if resume {
                self.replay(&feed, heartbeat).await?;
            }
            self.follow(&mut live, heartbeat).await
        }
        .await;
        if let Err(End::Close(code, reason)) = ended {
            tracing::info!(customer_id = %self.customer_id, code, %reason, "closing stream");
            metrics::counter!("coffer_websocket_closed_total", "code" => code.to_string()).increment(1);
            let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
            let _ = tokio::time::timeout(heartbeat, self.socket.send(Message::Close(Some(frame)))).await;
        }
    }

    async fn send(&mut self, seq: u64, id: Uuid, payload: &str, heartbeat: Duration) -> Result<(), End> {
        match tokio::time::timeout(heartbeat, self.socket.send(Message::Text(Utf8Bytes::from(payload)))).await
        {
            Ok(Ok(())) => {
                self.last_seq = seq;
                self.last_id = Some(id);
                Ok(())
            }
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(self.lagged("slow consumer")),
        }
    }

    fn lagged(&self, why: &str) -> End {
        let resume = self.last_id.map_or_else(String::new, |id| format!("; reconnect with after={id}"));
        End::Close(CLOSE_LAGGED, format!("{why}{resume}"))
    }

    async fn replay(&mut self, feed: &Feed, heartbeat: Duration) -> Result<(), End> {
        let mut replayed = 0;
        loop {
            let page = feed
                .after(self.customer_id, self.last_seq, REPLAY_PAGE)
                .await
                .map_err(|_| End::Close(1011, "cannot read the outbox".into()))?;
            for event in &page {
                self.send(event.seq, event.id, &event.payload, heartbeat).await?;
            }
            replayed += page.len();
            if page.len() < REPLAY_PAGE as usize {
                return Ok(());
            }
            if replayed >= REPLAY_MAX {
                return Err(End::Close(CLOSE_REPLAY_TOO_LONG, "too far behind; re-read state".into()));
            }
        }
    }

    async fn follow(
        &mut self,
        live: &mut tokio::sync::broadcast::Receiver<Arc<Delivered>>,
        heartbeat: Duration,
    ) -> Result<(), End> {
        let mut ticks = tokio::time::interval(heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    Ok(event) => {
                        if event.customer_id == Some(self.customer_id) && event.seq > self.last_seq {
                            self.send(event.seq, event.id, &event.payload, heartbeat).await?;
                        }
                    }
                    Err(RecvError::Lagged(_)) => return Err(self.lagged("fell behind the live buffer")),
                    Err(RecvError::Closed) => return Err(End::Close(1001, "server shutting down".into())),
                },
                message = self.socket.next() => match message {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(End::Gone),
                    // Any frame (pong, text) shows the client is alive; what it says is ignored.
                    Some(Ok(_)) => last_heard = Instant::now(),
                },
                _ = ticks.tick() => {
                    if last_heard.elapsed() > heartbeat * 2 {
                        return Err(End::Close(CLOSE_HEARTBEAT, "no answer to heartbeats".into()));
                    }
                    match tokio::time::timeout(heartbeat, self.socket.send(Message::Ping(Default::default()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Err(End::Gone),
                        Err(_) => return Err(self.lagged("slow consumer")),
                    }
                }
            }
        }
    }
}
