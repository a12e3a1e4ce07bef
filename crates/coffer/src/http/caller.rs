//! Who is calling: the extractors that authenticate a request before its handler runs.
//! [`AuthUser`] needs a valid access token; [`AdminUser`] an admin's access token or the
//! admin API key; [`AdminAuth`] the admin API key itself. All answer 401 problem+json
//! without a valid credential (and `AdminUser` 403 for a customer's token).
//! [`ClientAddress`] is where the request came from, for the per-address login limit.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use ipnet::IpNet;
use uuid::Uuid;

use super::{AppState, error::ApiError};
use crate::identity::Role;

/// A caller authenticated by a valid access token (`Authorization: Bearer <jwt>`); 401
/// problem+json otherwise.
#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub customer_id: Uuid,
    pub role: Role,
}

/// An admin: an access token with role admin (403 for a customer token) or the admin API
/// key; 401 without credentials.
#[derive(Clone, Copy, Debug)]
pub struct AdminUser {
    /// The admin customer, or `None` when the caller used the admin API key.
    pub customer_id: Option<Uuid>,
}

/// The client's IP address: the TCP peer, or — when the peer is one of the trusted proxies
/// (`COFFER_TRUSTED_PROXIES`, such as the load balancer) — the nearest address in
/// `X-Forwarded-For` that is not a trusted proxy. Untrusted peers cannot set it: their
/// header is ignored.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        Ok(Self(peer.map(|peer| client_address(peer, &parts.headers, &state.trusted_proxies))))
    }
}

/// Walks `X-Forwarded-For` from the right (the hop nearest to us) past trusted proxies.
/// A malformed entry stops the walk at the last address known to be good.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    let mut client = peer;
    if !is_trusted(&client) {
        return client;
    }
    let hops = headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok());
    let hops: Vec<&str> = hops.flat_map(|value| value.split(',')).collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(address) => {
                client = address;
                if !is_trusted(&address) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The bearer credential of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_credential(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The credential of an `authorization` value `Bearer <credential>` (the scheme in any
/// case), for HTTP headers and gRPC metadata alike.
pub fn bearer_credential(value: &str) -> Option<&str> {
    let (scheme, credential) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credential.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = bearer(&parts.headers)
            .and_then(|token| state.identity.verify_access_token(token))
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self { customer_id: claims.sub, role: claims.role })
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        if state.keys.is_admin_key(credential) {
            return Ok(Self { customer_id: None });
        }
        let claims = state.identity.verify_access_token(credential).ok_or(ApiError::Unauthorized)?;
        match claims.role {
            Role::Admin => Ok(Self { customer_id: Some(claims.sub) }),
            Role::Customer => Err(ApiError::Forbidden),
        }
    }
}

/// Proof that the request carries the admin API key itself (`Authorization: Bearer
/// <key>`), for the ledger API; 401 otherwise. Put it first among a handler's arguments
/// so that credentials are checked before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            Some(credential) if state.keys.is_admin_key(credential) => Ok(AdminAuth),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_through_trusted_proxies() {
        let balancer: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let headers = forwarded("198.51.100.7, 203.0.113.9, 10.0.0.5");
        // Through the balancer: the nearest untrusted hop, not whatever the client wrote first.
        assert_eq!(client_address(balancer, &headers, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        // From anyone else the header is ignored.
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_address(stranger, &headers, &trusted), stranger);
        // No proxies configured: always the peer.
        assert_eq!(client_address(balancer, &headers, &[]), balancer);
        // A malformed hop stops the walk at the last good address.
        assert_eq!(client_address(balancer, &forwarded("203.0.113.9, junk"), &trusted), balancer);
        assert_eq!(client_address(balancer, &HeaderMap::new(), &trusted), balancer);
    }
}
