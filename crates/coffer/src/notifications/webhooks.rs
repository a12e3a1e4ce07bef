//! Webhook deliveries: each event an endpoint subscribed to is POSTed to its URL, signed,
//! and retried with exponential backoff for more than a day until the endpoint answers
//! 2xx.
//!
//! Signature: header `Coffer-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" with the endpoint's secret>` (see [`sign`] and the README's recipe).
//! Targets: only `http`/`https`; hosts that resolve to loopback, private, link-local or
//! other non-public addresses are refused unless `COFFER_WEBHOOK_ALLOW_PRIVATE` is set,
//! and the request goes to the address that was checked (no DNS rebinding, no redirects).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hmac::{Hmac, KeyInit as _, Mac as _};
use reqwest::Url;
use sha2::Sha256;
use store::{Attempt, DeliveryRow, Store};
use tokio_util::sync::CancellationToken;

/// Deliveries per worker step.
const BATCH: u32 = 50;

/// The signature header of `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` made no more than `tolerance_s`
/// seconds before `now_s` (what a receiver checks).
pub fn verify(secret: &str, header: &str, body: &str, now_s: u64, tolerance_s: u64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<u64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else { return false };
    if now_s.abs_diff(timestamp) > tolerance_s {
        return false;
    }
    signatures.iter().any(|signature| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        mac.verify_slice(signature).is_ok()
    })
}

/// Why a webhook target is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("must be an absolute http or https URL")]
    NotHttp,
    #[error("must not carry credentials")]
    Credentials,
    #[error("resolves to a loopback, private or otherwise non-public address")]
    NotPublic,
    #[error("cannot be resolved")]
    Unresolvable,
}

/// Whether `ip` is not a public unicast address.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
        }
    }
}

/// Checks `url` as a webhook target and resolves it; the addresses are the ones a
/// delivery may connect to.
pub async fn check_target(url: &str, allow_private: bool) -> Result<(Url, Vec<SocketAddr>), TargetError> {
    let url = Url::parse(url).map_err(|_| TargetError::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::NotHttp);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let host = url.host_str().expect("checked").trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().ok_or(TargetError::NotHttp)?;
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| TargetError::Unresolvable)?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(TargetError::Unresolvable);
    }
    if !allow_private && addresses.iter().any(|address| is_non_public(address.ip())) {
        return Err(TargetError::NotPublic);
    }
    Ok((url, addresses))
}

/// Delivery settings.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryOptions {
    /// Delay before the first retry; it doubles per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Attempts before a delivery is given up.
    pub attempts_max: u32,
    pub allow_private: bool,
    /// Time allowed for one request.
    pub timeout: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            attempts_max: 34,
            allow_private: false,
            timeout: Duration::from_secs(10),
        }
    }
}

impl DeliveryOptions {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        crate::support::backoff(self.retry_base, attempt, self.retry_max)
    }

    /// How long a delivery is retried in all: the sum of the delays between attempts.
    pub fn retry_span(&self) -> Duration {
        (1..self.attempts_max).map(|attempt| self.delay(attempt)).sum()
    }
}

/// The webhook delivery worker.
#[derive(Debug)]
pub struct Deliverer {
    store: Store,
    options: DeliveryOptions,
}

impl Deliverer {
    pub fn new(store: Store, options: DeliveryOptions) -> Self {
        Self { store, options }
    }

    /// Attempts the deliveries that are due; true when a full batch was found.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let due = self.store.due_deliveries(store::now_ns(), BATCH).await?;
        let attempts = due.iter().map(|delivery| self.attempt(delivery));
        let outcomes = futures::future::join_all(attempts).await;
        for (delivery, attempt) in due.iter().zip(outcomes) {
            let outcome = match &attempt {
                Attempt::Succeeded { .. } => "succeeded",
                Attempt::Failed { retry_at: Some(_), .. } => "retrying",
                Attempt::Failed { retry_at: None, .. } => "failed",
            };
            metrics::counter!("coffer_webhook_deliveries_total", "outcome" => outcome).increment(1);
            self.store.delivery_attempted(delivery.id, &attempt, store::now_ns()).await?;
        }
        Ok(due.len() == BATCH as usize)
    }

    async fn attempt(&self, delivery: &DeliveryRow) -> Attempt {
        let attempt = u32::try_from(delivery.attempts).unwrap_or(u32::MAX).saturating_add(1);
        let failed = |status_code: Option<u16>, error: String, permanent: bool| {
            let retry_at = (!permanent && attempt < self.options.attempts_max)
                .then(|| store::now_ns() + self.options.delay(attempt).as_nanos() as u64);
            Attempt::Failed { status_code, error, retry_at }
        };
        let endpoint = match self.store.webhook(delivery.endpoint_id).await {
            Ok(Some(endpoint)) => endpoint,
            Ok(None) => return failed(None, "endpoint deleted".into(), true),
            Err(error) => return failed(None, format!("store: {error}"), false),
        };
        let (url, addresses) = match check_target(&endpoint.url, self.options.allow_private).await {
            Ok(target) => target,
            Err(error @ TargetError::Unresolvable) => return failed(None, format!("target {error}"), false),
            Err(error) => return failed(None, format!("target {error}"), true),
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let client = match super::http_client()
            .timeout(self.options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addresses)
            .build()
        {
            Ok(client) => client,
            Err(error) => return failed(None, format!("client: {error}"), false),
        };
        let now_s = store::now_ns() / 1_000_000_000;
        let response = client
            .post(url)
            .header("content-type", "application/cloudevents+json")
            .header("user-agent", "Coffer-Webhooks/1")
            .header("coffer-signature", sign(&endpoint.secret, now_s, &delivery.payload))
            .header("coffer-event-id", delivery.event_id.to_string())
            .header("coffer-event-type", &delivery.event_type)
            .header("coffer-delivery-id", delivery.id.to_string())
            .body(delivery.payload.clone())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                Attempt::Succeeded { status_code: response.status().as_u16() }
            }
            Ok(response) => {
                failed(Some(response.status().as_u16()), format!("answered {}", response.status()), false)
            }
            Err(error) => failed(None, format!("request failed: {error}"), false),
        }
    }

    /// Delivers until `shutdown`, looking for due deliveries every `interval`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        crate::support::repeat("webhooks", interval, shutdown, || self.step()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_expire() {
        let header = sign("whsec_test", 1_700_000_000, r#"{"a":1}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify("whsec_test", &header, r#"{"a":1}"#, 1_700_000_010, 300));
        assert!(!verify("whsec_test", &header, r#"{"a":2}"#, 1_700_000_010, 300), "another body");
        assert!(!verify("whsec_other", &header, r#"{"a":1}"#, 1_700_000_010, 300), "another secret");
        assert!(!verify("whsec_test", &header, r#"{"a":1}"#, 1_700_001_000, 300), "too old");
        assert!(!verify("whsec_test", "v1=00", r#"{"a":1}"#, 1_700_000_010, 300), "no timestamp");
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn targets_are_checked() {
        assert_eq!(check_target("ftp://example.com/x", true).await.unwrap_err(), TargetError::NotHttp);
        assert_eq!(check_target("file:///etc/passwd", true).await.unwrap_err(), TargetError::NotHttp);
        assert_eq!(
            check_target("http://u:p@example.com/", true).await.unwrap_err(),
            TargetError::Credentials
        );
        assert_eq!(check_target("http://127.0.0.1:9/hook", false).await.unwrap_err(), TargetError::NotPublic);
        assert_eq!(check_target("http://[::1]:9/hook", false).await.unwrap_err(), TargetError::NotPublic);
        assert_eq!(check_target("http://localhost:9/hook", false).await.unwrap_err(), TargetError::NotPublic);
        assert!(check_target("http://127.0.0.1:9/hook", true).await.is_ok());
    }

    #[test]
    fn retries_span_more_than_a_day() {
        let options = DeliveryOptions::default();
        assert!(options.retry_span() >= Duration::from_secs(24 * 3600), "{:?}", options.retry_span());
        assert_eq!(options.delay(1), Duration::from_secs(10));
        assert_eq!(options.delay(2), Duration::from_secs(20));
        assert_eq!(options.delay(30), Duration::from_secs(3600));
    }
}
