//! Receiver authentication: the seed webhook API's six types, validated at load time with its
//! rules, and the per-attempt layer that adds the credentials to each request.

use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use tower::{Layer, Service};

use super::config::{AuthConfig, AuthKind};
use super::request::Delivery;
use super::secret::Secret;

/// The query parameter `querystring` auth uses when `name` is not given.
pub const DEFAULT_QUERY_PARAM: &str = "token";

/// Credentials as the stack applies them.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum AuthSettings {
    /// Nothing is added.
    #[default]
    None,
    /// One header (basic, bearer, authheader and header all end up here). The value is marked
    /// sensitive, so `Debug` of the request never shows it.
    Header {
        /// Header name.
        name: HeaderName,
        /// Header value.
        value: HeaderValue,
    },
    /// `?name=token` on the URL.
    Query {
        /// Parameter name.
        name: String,
        /// The token.
        token: Secret,
    },
}

/// Why an `auth` block is invalid. `field` names the key at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidAuth {
    /// `auth.username`, `auth.token`, ...
    pub field: &'static str,
    /// What is wrong (never the secret itself).
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidAuth {
    InvalidAuth {
        field,
        reason: reason.into(),
    }
}

impl AuthSettings {
    /// Applies the seed API's rules: `none` takes no credentials; `basic` needs both username
    /// and password; the token types need a token; credentials and a token never together.
    pub fn from_config(config: &AuthConfig) -> Result<AuthSettings, InvalidAuth> {
        let kind = config.kind;
        let has_user = config.username.is_some();
        let has_password = config.password.is_some();
        let has_token = config.token.is_some();
        if (has_user || has_password) && has_token {
            return Err(invalid(
                "auth.token",
                "give either username/password or a token, not both",
            ));
        }
        if kind != AuthKind::Header && kind != AuthKind::Querystring && config.name.is_some() {
            return Err(invalid(
                "auth.name",
                format!("is only used by auth types header and querystring, not {kind:?}"),
            ));
        }
        match kind {
            AuthKind::None => {
                if has_user || has_password || has_token {
                    return Err(invalid(
                        if has_token {
                            "auth.token"
                        } else {
                            "auth.username"
                        },
                        "auth type none takes no username, password or token",
                    ));
                }
                Ok(AuthSettings::None)
            }
            AuthKind::Basic => {
                let user = present(config.username.as_ref(), "auth.username", "basic")?;
                let password = present(config.password.as_ref(), "auth.password", "basic")?;
                if user.expose().contains(':') {
                    return Err(invalid(
                        "auth.username",
                        "must not contain ':' (HTTP Basic cannot carry it)",
                    ));
                }
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    user.expose(),
                    password.expose()
                ));
                header(AUTHORIZATION, &format!("Basic {encoded}"))
            }
            AuthKind::Bearer | AuthKind::Authheader | AuthKind::Header | AuthKind::Querystring => {
                if has_user || has_password {
                    return Err(invalid(
                        "auth.username",
                        format!("auth type {kind:?} takes a token, not username/password"),
                    ));
                }
                let token = present(config.token.as_ref(), "auth.token", kind_name(kind))?;
                match kind {
                    AuthKind::Bearer => {
                        header(AUTHORIZATION, &format!("Bearer {}", token.expose()))
                    }
                    AuthKind::Authheader => header(AUTHORIZATION, token.expose()),
                    AuthKind::Header => {
                        let name = config.name.as_deref().ok_or_else(|| {
                            invalid("auth.name", "auth type header needs the header name")
                        })?;
                        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            invalid("auth.name", format!("{name:?} is not a valid header name"))
                        })?;
                        header(name, token.expose())
                    }
                    _ => {
                        let name = config.name.as_deref().unwrap_or(DEFAULT_QUERY_PARAM);
                        if name.trim().is_empty() {
                            return Err(invalid("auth.name", "must not be empty"));
                        }
                        Ok(AuthSettings::Query {
                            name: name.to_string(),
                            token: token.clone(),
                        })
                    }
                }
            }
        }
    }
}

fn kind_name(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::None => "none",
        AuthKind::Basic => "basic",
        AuthKind::Bearer => "bearer",
        AuthKind::Header => "header",
        AuthKind::Authheader => "authheader",
        AuthKind::Querystring => "querystring",
    }
}

fn present<'a>(
    value: Option<&'a Secret>,
    field: &'static str,
    kind: &str,
) -> Result<&'a Secret, InvalidAuth> {
    match value {
        Some(v) if !v.is_blank() => Ok(v),
        Some(_) => Err(invalid(field, "must not be empty")),
        None => Err(invalid(field, format!("is required for auth type {kind}"))),
    }
}

fn header(name: HeaderName, value: &str) -> Result<AuthSettings, InvalidAuth> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        invalid(
            "auth.token",
            "contains characters not allowed in an HTTP header",
        )
    })?;
    value.set_sensitive(true);
    Ok(AuthSettings::Header { name, value })
}

/// Adds the subscription's credentials to every attempt.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: Arc<AuthSettings>,
}

impl AuthLayer {
    /// A layer adding `auth`.
    pub fn new(auth: AuthSettings) -> Self {
        AuthLayer {
            auth: Arc::new(auth),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    auth: Arc<AuthSettings>,
}

impl<S: Service<Delivery>> Service<Delivery> for Auth<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Delivery) -> S::Future {
        match &*self.auth {
            AuthSettings::None => {}
            AuthSettings::Header { name, value } => {
                req.headers.insert(name.clone(), value.clone());
            }
            AuthSettings::Query { name, token } => req.query.push((name.clone(), token.clone())),
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: AuthKind) -> AuthConfig {
        AuthConfig {
            kind,
            ..AuthConfig::default()
        }
    }

    fn header_value(s: AuthSettings) -> (String, String) {
        match s {
            AuthSettings::Header { name, value } => {
                assert!(value.is_sensitive());
                (name.to_string(), value.to_str().unwrap().to_string())
            }
            other => panic!("expected a header, got {other:?}"),
        }
    }

    #[test]
    fn each_type_builds_its_credentials() {
        let mut basic = cfg(AuthKind::Basic);
        basic.username = Some("alice".into());
        basic.password = Some("s3cret".into());
        assert_eq!(
            header_value(AuthSettings::from_config(&basic).unwrap()),
            ("authorization".into(), "Basic YWxpY2U6czNjcmV0".into())
        );
        let mut bearer = cfg(AuthKind::Bearer);
        bearer.token = Some("tok".into());
        assert_eq!(
            header_value(AuthSettings::from_config(&bearer).unwrap()).1,
            "Bearer tok"
        );
        let mut raw = cfg(AuthKind::Authheader);
        raw.token = Some("SSWS abc".into());
        assert_eq!(
            header_value(AuthSettings::from_config(&raw).unwrap()).1,
            "SSWS abc"
        );
        let mut custom = cfg(AuthKind::Header);
        custom.token = Some("k".into());
        custom.name = Some("X-Api-Key".into());
        assert_eq!(
            header_value(AuthSettings::from_config(&custom).unwrap()),
            ("x-api-key".into(), "k".into())
        );
        let mut query = cfg(AuthKind::Querystring);
        query.token = Some("q".into());
        assert_eq!(
            AuthSettings::from_config(&query).unwrap(),
            AuthSettings::Query {
                name: "token".into(),
                token: "q".into()
            }
        );
        assert_eq!(
            AuthSettings::from_config(&cfg(AuthKind::None)).unwrap(),
            AuthSettings::None
        );
    }

    #[test]
    fn seed_validation_rules() {
        let field = |c: &AuthConfig| AuthSettings::from_config(c).unwrap_err().field;
        // none takes nothing
        let mut none = cfg(AuthKind::None);
        none.token = Some("t".into());
        assert_eq!(field(&none), "auth.token");
        let mut none = cfg(AuthKind::None);
        none.username = Some("u".into());
        assert_eq!(field(&none), "auth.username");
        // basic needs both
        let mut basic = cfg(AuthKind::Basic);
        basic.username = Some("u".into());
        assert_eq!(field(&basic), "auth.password");
        let mut basic = cfg(AuthKind::Basic);
        basic.password = Some("p".into());
        assert_eq!(field(&basic), "auth.username");
        // token types need a token
        for kind in [
            AuthKind::Bearer,
            AuthKind::Authheader,
            AuthKind::Querystring,
        ] {
            assert_eq!(field(&cfg(kind)), "auth.token", "{kind:?}");
        }
        let mut header = cfg(AuthKind::Header);
        header.token = Some("t".into());
        assert_eq!(field(&header), "auth.name");
        // never both
        let mut both = cfg(AuthKind::Basic);
        both.username = Some("u".into());
        both.password = Some("p".into());
        both.token = Some("t".into());
        assert_eq!(field(&both), "auth.token");
        let mut both = cfg(AuthKind::Bearer);
        both.username = Some("u".into());
        both.token = Some("t".into());
        assert_eq!(field(&both), "auth.token");
        // blank is missing
        let mut blank = cfg(AuthKind::Bearer);
        blank.token = Some("  ".into());
        assert_eq!(field(&blank), "auth.token");
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let mut bad = cfg(AuthKind::Bearer);
        bad.token = Some("sekrit\n".into());
        let e = AuthSettings::from_config(&bad).unwrap_err();
        assert!(!e.to_string().contains("sekrit"), "{e}");
    }
}
