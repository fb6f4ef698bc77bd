//! Who may do what. Owns the user accounts (argon2-hashed passwords), the API
//! tokens (stored as SHA-256 digests of high-entropy secrets, shown once), the
//! roles, and the check of an `Authorization` header (basic or bearer) with
//! failed logins rate-limited per client. It knows nothing of HTTP routing:
//! [`http`] adapts it to axum, and each API area chooses its error shape.
//! Secrets never reach logs or metrics; only the generated admin password is
//! printed, once, at first start.

pub mod http;
mod limiter;

use crate::clock::now_ms;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::metrics::{Counter, Registry};
use crate::storage::kv::{trees, Kv, KvError, KvTree};
use limiter::FailureLimiter;

/// The name of the account created at first start.
pub const ADMIN_USER: &str = "admin";
/// The environment variable that sets the admin password at first start.
pub const ADMIN_PASSWORD_ENV: &str = "FLEETMON_ADMIN_PASSWORD";
/// How long a verified basic-auth password is remembered, so that a client
/// sending it on every request (Grafana does) pays for argon2 once.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_MAX: usize = 1024;
const TOKEN_PREFIX: &str = "fmt_";

/// What a caller may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads vehicle data, metrics and the command log.
    Viewer,
    /// Also sends commands and wakes cars.
    Editor,
    /// Also manages tokens.
    Admin,
}

impl Role {
    /// The role's name as written in flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role '{other}'; expected viewer, editor or admin"
            )),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `user:<name>` or `token:<name>`: what the command log records.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
}

/// Why a request carries no usable identity.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("authentication required: send a bearer token or basic auth")]
    Missing,
    /// The header is malformed or the credentials are wrong.
    #[error("{0}")]
    Invalid(&'static str),
    /// Too many failed attempts from this client.
    #[error("too many failed logins from this address; retry in {0} s")]
    RateLimited(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] KvError),
}

#[derive(Serialize, Deserialize)]
struct Account {
    password_hash: String,
    role: Role,
    created_at_ms: i64,
}

/// An API token as listed (never with its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenInfo {
    /// Public identifier, part of the token string.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Role granted.
    pub role: Role,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Who created it.
    pub created_by: String,
}

#[derive(Serialize, Deserialize)]
struct StoredToken {
    #[serde(flatten)]
    info: TokenInfo,
    secret_sha256: String,
}

/// Accounts, tokens and the login check.
pub struct Auth {
    users: KvTree,
    tokens: KvTree,
    failures: FailureLimiter,
    verified: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    /// Held while a password is hashed; see [`Auth::check_basic`].
    hashing: Mutex<()>,
    /// Counts the passwords hashed, once [`Auth::with_metrics`] registered it.
    password_hashes: Option<Counter>,
    anonymous_read: bool,
}

impl Auth {
    /// Opens the account and token trees of `kv`.
    pub fn new(kv: &Kv) -> Result<Auth, KvError> {
        Ok(Auth {
            users: kv.tree(trees::USERS)?,
            tokens: kv.tree(trees::TOKENS)?,
            failures: FailureLimiter::default(),
            verified: Mutex::new(HashMap::new()),
            hashing: Mutex::new(()),
            password_hashes: None,
            anonymous_read: false,
        })
    }

    /// Registers `fleetmon_auth_password_hashes_total` on `registry`.
    pub fn with_metrics(mut self, registry: &Registry) -> Auth {
        self.password_hashes = Some(
            registry
                .counter(
                    "fleetmon_auth_password_hashes",
                    "Passwords hashed (argon2) to check basic-auth credentials not verified in the last 5 minutes.",
                    &[],
                )
                .with(&[]),
        );
        self
    }

    /// Lets the Prometheus API's reads through without credentials
    /// (`--web.anonymous-read`, for a trusted network).
    pub fn with_anonymous_read(mut self, on: bool) -> Auth {
        self.anonymous_read = on;
        self
    }

    /// Whether reads need no credentials.
    pub fn anonymous_read(&self) -> bool {
        self.anonymous_read
    }

    /// Creates the `admin` account when no account exists yet, with `password`
    /// or, when it is `None`, a generated one, which is returned so that the
    /// caller can show it once.
    pub fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, KvError> {
        if !self.users.is_empty() {
            return Ok(None);
        }
        let generated = password.is_none().then(|| random_secret(18));
        let password = password.or(generated.as_deref()).unwrap_or_default();
        self.set_password(ADMIN_USER, password, Role::Admin)?;
        Ok(generated)
    }

    /// Creates or replaces the account `user`.
    pub fn set_password(&self, user: &str, password: &str, role: Role) -> Result<(), KvError> {
        let account = Account {
            password_hash: hash_password(password),
            role,
            created_at_ms: now_ms(),
        };
        self.users.put(user.as_bytes(), &account)?;
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (p, _)| p.name != format!("user:{user}"));
        Ok(())
    }

    /// Checks an `Authorization` header value (`Basic …` or `Bearer …`) from
    /// `client`. Failed attempts count against the client's login budget.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client: IpAddr,
    ) -> Result<Principal, AuthError> {
        // Allowed to hash, `check` always answers.
        self.check(authorization, client, true)
            .unwrap_or(Err(AuthError::Invalid("invalid user name or password")))
    }

    /// [`Auth::authenticate`] when it can answer without hashing a password
    /// (a token, basic credentials verified recently, a malformed header);
    /// `None` when only a password check, tens of milliseconds of CPU, can
    /// tell. Request handlers call it inline and run `authenticate` on a
    /// blocking thread only when it returns `None`.
    pub fn authenticate_cheaply(
        &self,
        authorization: Option<&str>,
        client: IpAddr,
    ) -> Option<Result<Principal, AuthError>> {
        self.check(authorization, client, false)
    }

    /// `None` only when the answer needs a password hashed and `hash` is false.
    fn check(
        &self,
        authorization: Option<&str>,
        client: IpAddr,
        hash: bool,
    ) -> Option<Result<Principal, AuthError>> {
        let Some(header) = authorization else {
            return Some(Err(AuthError::Missing));
        };
        let now = Instant::now();
        if let Err(retry) = self.failures.check(client, now) {
            return Some(Err(AuthError::RateLimited(retry)));
        }
        let result = match header.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                self.check_token(rest.trim())
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                self.check_basic(rest.trim(), now, hash)?
            }
            _ => Err(AuthError::Invalid(
                "unsupported Authorization scheme; use Bearer or Basic",
            )),
        };
        if matches!(result, Err(AuthError::Invalid(_))) {
            self.failures.record_failure(client, now);
        }
        Some(result)
    }

    /// `None` when the password must be hashed and `hash` is false.
    fn check_basic(
        &self,
        encoded: &str,
        now: Instant,
        hash: bool,
    ) -> Option<Result<Principal, AuthError>> {
        let malformed = || Some(Err(AuthError::Invalid("malformed basic credentials")));
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return malformed();
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return malformed();
        };
        let Some((user, password)) = text.split_once(':') else {
            return malformed();
        };
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(principal) = self.remembered(&digest, now) {
            return Some(Ok(principal));
        }
        // A token may also be sent as the basic-auth password (any user name).
        if password.starts_with(TOKEN_PREFIX) {
            return Some(self.check_token(password));
        }
        if !hash {
            return None;
        }
        // One password hash at a time. Each takes 19 MiB and tens of
        // milliseconds: a dashboard's dozen parallel queries with credentials
        // not yet verified would otherwise hash them a dozen times at once
        // (measured: three remote-write senders starting together held
        // 60 MB). Requests that waited find the credentials verified by the
        // one before them.
        let _one_at_a_time = self.hashing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(principal) = self.remembered(&digest, now) {
            return Some(Ok(principal));
        }
        Some(self.check_password(user, password, digest, now))
    }

    fn check_password(
        &self,
        user: &str,
        password: &str,
        digest: [u8; 32],
        now: Instant,
    ) -> Result<Principal, AuthError> {
        let invalid = AuthError::Invalid("invalid user name or password");
        if let Some(hashes) = &self.password_hashes {
            hashes.inc();
        }
        let Some(account) = self.users.get::<Account>(user.as_bytes())? else {
            // Spend the time a real check would, so user names cannot be probed by timing.
            let _ = verify_password(password, DUMMY_HASH.as_str());
            return Err(invalid);
        };
        if !verify_password(password, &account.password_hash) {
            return Err(invalid);
        }
        let principal = Principal {
            name: format!("user:{user}"),
            role: account.role,
        };
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, (_, at)| now.duration_since(*at) < VERIFIED_TTL);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(digest, (principal.clone(), now));
        Ok(principal)
    }

    fn remembered(&self, digest: &[u8; 32], now: Instant) -> Option<Principal> {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified
            .get(digest)
            .filter(|(_, at)| now.duration_since(*at) < VERIFIED_TTL)
            .map(|(p, _)| p.clone())
    }

    fn check_token(&self, token: &str) -> Result<Principal, AuthError> {
        let invalid = AuthError::Invalid("invalid bearer token");
        let (id, secret) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or(invalid)?;
        let stored = self
            .tokens
            .get::<StoredToken>(id.as_bytes())?
            .ok_or(AuthError::Invalid("invalid bearer token"))?;
        let digest = hex(&Sha256::digest(secret.as_bytes()));
        if digest
            .as_bytes()
            .ct_eq(stored.secret_sha256.as_bytes())
            .into()
        {
            Ok(Principal {
                name: format!("token:{}", stored.info.name),
                role: stored.info.role,
            })
        } else {
            Err(AuthError::Invalid("invalid bearer token"))
        }
    }

    /// Creates a token; returns its description and the token string, which
    /// is not stored and cannot be shown again.
    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        created_by: &str,
    ) -> Result<(TokenInfo, String), AuthError> {
        validate_token_name(name).map_err(AuthError::Invalid)?;
        let id = format!(
            "{:012x}",
            rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff
        );
        let secret = random_secret(32);
        let info = TokenInfo {
            id: id.clone(),
            name: name.to_string(),
            role,
            created_at_ms: now_ms(),
            created_by: created_by.to_string(),
        };
        let stored = StoredToken {
            info: info.clone(),
            secret_sha256: hex(&Sha256::digest(secret.as_bytes())),
        };
        self.tokens.put(id.as_bytes(), &stored)?;
        Ok((info, format!("{TOKEN_PREFIX}{id}_{secret}")))
    }

    /// Every token, oldest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, KvError> {
        let mut tokens: Vec<TokenInfo> = self
            .tokens
            .entries::<StoredToken>()?
            .into_iter()
            .map(|(_, t)| t.info)
            .collect();
        tokens.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(tokens)
    }

    /// Revokes the token with this id (or this full token string); true when it existed.
    pub fn revoke_token(&self, id_or_token: &str) -> Result<bool, KvError> {
        let id = id_or_token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map_or(id_or_token, |(id, _)| id);
        self.tokens.remove(id.as_bytes())
    }
}

/// A name is 1–64 characters of letters, digits, `-`, `_` and `.`.
fn validate_token_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("a token name is 1 to 64 letters, digits, '-', '_' or '.'")
    }
}

fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Hashing only fails on parameter errors, impossible with the defaults; an
        // unusable hash then simply never verifies.
        .unwrap_or_default()
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("fleetmon-dummy-password"));

fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(buf.as_mut_slice());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn admin_is_created_once_with_the_given_or_a_generated_password() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path()).unwrap();
        let auth = Auth::new(&kv).unwrap();
        assert_eq!(auth.ensure_admin(Some("s3cret-pass")).unwrap(), None);
        assert_eq!(
            auth.ensure_admin(None).unwrap(),
            None,
            "only on first start"
        );
        let admin = auth
            .authenticate(Some(&basic("admin", "s3cret-pass")), CLIENT)
            .unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert!(matches!(
            auth.authenticate(Some(&basic("admin", "wrong")), CLIENT),
            Err(AuthError::Invalid(_))
        ));

        let other = tempfile::tempdir().unwrap();
        let auth = Auth::new(&Kv::open(other.path()).unwrap()).unwrap();
        let generated = auth.ensure_admin(None).unwrap().unwrap();
        assert!(generated.len() >= 20);
        assert!(auth
            .authenticate(Some(&basic("admin", &generated)), CLIENT)
            .is_ok());
    }

    #[test]
    fn concurrent_requests_with_new_credentials_hash_the_password_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let auth = Auth::new(&Kv::open(dir.path()).unwrap())
            .unwrap()
            .with_metrics(&registry);
        auth.ensure_admin(Some("s3cret-pass")).unwrap();
        let hashes = || {
            registry
                .counter("fleetmon_auth_password_hashes", "", &[])
                .with(&[])
                .get()
        };
        let before = hashes();
        const REQUESTS: usize = 4;
        let start = std::sync::Barrier::new(REQUESTS);
        let right = basic("admin", "s3cret-pass");
        std::thread::scope(|scope| {
            let requests: Vec<_> = (0..REQUESTS)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        auth.authenticate(Some(&right), CLIENT)
                    })
                })
                .collect();
            for request in requests {
                assert_eq!(request.join().unwrap().unwrap().role, Role::Admin);
            }
        });
        assert_eq!(hashes() - before, 1.0, "one hash for {REQUESTS} requests");
        // A wrong password is hashed every time it is tried.
        let wrong = basic("admin", "not-it");
        for _ in 0..2 {
            assert!(auth.authenticate(Some(&wrong), CLIENT).is_err());
        }
        assert_eq!(hashes() - before, 3.0);
    }

    #[test]
    fn only_an_unverified_password_needs_the_slow_check() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::new(&Kv::open(dir.path()).unwrap()).unwrap();
        auth.ensure_admin(Some("s3cret-pass")).unwrap();
        let (_, token) = auth
            .create_token("grafana", Role::Viewer, "user:admin")
            .unwrap();
        let right = basic("admin", "s3cret-pass");
        let wrong = basic("admin", "not-it");
        assert!(auth.authenticate_cheaply(Some(&right), CLIENT).is_none());
        assert!(auth.authenticate_cheaply(Some(&wrong), CLIENT).is_none());
        assert_eq!(
            auth.authenticate(Some(&right), CLIENT).unwrap().role,
            Role::Admin
        );
        // Verified once, the same credentials pass without hashing; others do not.
        let again = auth.authenticate_cheaply(Some(&right), CLIENT);
        assert_eq!(again.unwrap().unwrap().role, Role::Admin);
        assert!(auth.authenticate_cheaply(Some(&wrong), CLIENT).is_none());
        let bearer = auth.authenticate_cheaply(Some(&format!("Bearer {token}")), CLIENT);
        assert_eq!(bearer.unwrap().unwrap().name, "token:grafana");
        for bad in [None, Some("Basic %%%"), Some("Digest x")] {
            assert!(
                matches!(auth.authenticate_cheaply(bad, CLIENT), Some(Err(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tokens_authenticate_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path()).unwrap();
        let auth = Auth::new(&kv).unwrap();
        let (info, token) = auth
            .create_token("grafana", Role::Viewer, "user:admin")
            .unwrap();
        let who = auth
            .authenticate(Some(&format!("Bearer {token}")), CLIENT)
            .unwrap();
        assert_eq!(
            who,
            Principal {
                name: "token:grafana".into(),
                role: Role::Viewer
            }
        );
        // Grafana can also send a token as a basic-auth password.
        assert!(auth
            .authenticate(Some(&basic("grafana", &token)), CLIENT)
            .is_ok());
        let raw: Vec<(Vec<u8>, serde_json::Value)> =
            kv.tree(trees::TOKENS).unwrap().entries().unwrap();
        // `fmt_<id>_<secret>`; the secret itself may contain `_`.
        let secret = token.splitn(3, '_').nth(2).unwrap();
        assert!(
            !raw[0].1.to_string().contains(secret),
            "secret stored in clear"
        );
        assert_eq!(auth.list_tokens().unwrap(), vec![info.clone()]);
        assert!(auth.revoke_token(&info.id).unwrap());
        assert!(auth
            .authenticate(Some(&format!("Bearer {token}")), CLIENT)
            .is_err());
        assert!(auth.create_token("bad name", Role::Viewer, "x").is_err());
    }

    #[test]
    fn failed_logins_are_rate_limited_per_client() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::new(&Kv::open(dir.path()).unwrap()).unwrap();
        let (_, token) = auth.create_token("t", Role::Viewer, "x").unwrap();
        let attacker: IpAddr = "127.0.0.2".parse().unwrap();
        let mut limited = false;
        for _ in 0..=(limiter::FAILURE_BURST as usize) {
            if let Err(AuthError::RateLimited(_)) =
                auth.authenticate(Some("Bearer fmt_000000000000_guess"), attacker)
            {
                limited = true;
            }
        }
        assert!(limited);
        // Even the right token is refused from the limited address, not from others.
        assert!(matches!(
            auth.authenticate(Some(&format!("Bearer {token}")), attacker),
            Err(AuthError::RateLimited(_))
        ));
        assert!(auth
            .authenticate(Some(&format!("Bearer {token}")), CLIENT)
            .is_ok());
    }
}
