//! The axum side of [`Auth`](super::Auth): a middleware ([`gate`]) that
//! authenticates each request of a route group, requires a minimum role, and
//! puts the [`Principal`] into the request's extensions for handlers that
//! record who acted. Each API area passes its own rejection renderer, so the
//! fleet API answers in Tesla's shape and the Prometheus API in Prometheus's.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::{Auth, AuthError, Principal, Role};

/// Why a request was refused.
#[derive(Debug)]
pub enum Rejection {
    /// No or bad credentials (401), too many failures (429), or a store error (500).
    Unauthenticated(AuthError),
    /// Authenticated, but the role is below what the route needs (403).
    Forbidden {
        /// The caller's role.
        role: Role,
        /// The role the route needs.
        needed: Role,
    },
}

impl Rejection {
    /// The HTTP status for this rejection.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Unauthenticated(AuthError::Missing | AuthError::Invalid(_)) => 401,
            Rejection::Unauthenticated(AuthError::RateLimited(_)) => 429,
            Rejection::Unauthenticated(AuthError::Store(_)) => 500,
            Rejection::Forbidden { .. } => 403,
        }
    }

    /// Seconds to wait before retrying, for a rate-limited client.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Rejection::Unauthenticated(AuthError::RateLimited(secs)) => Some(*secs),
            _ => None,
        }
    }

    /// A sentence for the response body.
    pub fn description(&self) -> String {
        match self {
            Rejection::Unauthenticated(e) => e.to_string(),
            Rejection::Forbidden { role, needed } => format!(
                "this needs the {} role; the credentials used have the {} role",
                needed.as_str(),
                role.as_str()
            ),
        }
    }
}

/// The state of [`gate`]: who checks, the role required, how to refuse.
#[derive(Clone)]
pub struct Gate {
    auth: Arc<Auth>,
    needed: Role,
    reject: fn(Rejection) -> Response,
    /// Whether callers without credentials read as viewers
    /// (`--web.anonymous-read`, for the Prometheus API's reads).
    anonymous: bool,
}

impl Gate {
    /// A gate letting through callers with at least `needed`, refusing others with `reject`.
    pub fn new(auth: Arc<Auth>, needed: Role, reject: fn(Rejection) -> Response) -> Gate {
        Gate {
            auth,
            needed,
            reject,
            anonymous: false,
        }
    }

    /// A viewer gate for the Prometheus API's reads: with
    /// `--web.anonymous-read` it also lets callers without credentials
    /// through, as viewers.
    pub fn reads(auth: Arc<Auth>, reject: fn(Rejection) -> Response) -> Gate {
        Gate {
            anonymous: auth.anonymous_read(),
            ..Gate::new(auth, Role::Viewer, reject)
        }
    }
}

/// Who an anonymous read is recorded as.
pub const ANONYMOUS: &str = "anonymous";

/// Middleware: authenticate, check the role, then run the handler with the
/// [`Principal`] in the request's extensions.
pub async fn gate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip());
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if header.is_none() && gate.anonymous {
        request.extensions_mut().insert(Principal {
            name: ANONYMOUS.to_string(),
            role: Role::Viewer,
        });
        return next.run(request).await;
    }
    let checked = match gate.auth.authenticate_cheaply(header.as_deref(), client) {
        Some(checked) => checked,
        None => {
            let auth = gate.auth.clone();
            // argon2 costs tens of milliseconds of CPU: keep it off the async workers.
            tokio::task::spawn_blocking(move || auth.authenticate(header.as_deref(), client))
                .await
                .unwrap_or(Err(AuthError::Invalid("authentication was interrupted")))
        }
    };
    let principal: Principal = match checked {
        Ok(p) => p,
        Err(e) => return (gate.reject)(Rejection::Unauthenticated(e)),
    };
    if principal.role < gate.needed {
        return (gate.reject)(Rejection::Forbidden {
            role: principal.role,
            needed: gate.needed,
        });
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}
