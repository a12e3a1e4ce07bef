//! TLS on both listeners (`COFFER_TLS_CERT` / `COFFER_TLS_KEY`), with a self-signed
//! certificate made for the test: REST answers over HTTPS and not over plain HTTP, gRPC
//! over TLS and not in plaintext, and a certificate that is missing or does not match
//! its key stops the server at start with a message naming the setting.

mod common;

use coffer::{config::ServeArgs, server::Server};
use common::{Options, spawn_app_with};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Writes a self-signed certificate for `localhost` into DATA_DIR/tls and points the
/// server at it.
fn with_tls(args: &mut ServeArgs) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = args.database.data_dir.join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    args.tls_cert = Some(dir.join("cert.pem"));
    args.tls_key = Some(dir.join("key.pem"));
}

#[tokio::test]
async fn both_listeners_speak_tls_with_the_configured_certificate() {
    let app =
        spawn_app_with(&common::Backend::Sqlite, Options { configure: with_tls, ..Options::default() }).await;
    let cert = std::fs::read(app.data_dir.path().join("tls/cert.pem")).unwrap();

    let client = coffer::notifications::http_client()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    let https = format!("https://localhost:{}/health/live", app.address.port());
    let answer = client.get(&https).send().await.expect("HTTPS with the configured certificate");
    assert_eq!(answer.status(), 200);
    assert!(client.get(app.url("/health/live")).send().await.is_err(), "no plain HTTP on a TLS listener");
    let untrusting = coffer::notifications::http_client().build().unwrap();
    assert!(untrusting.get(&https).send().await.is_err(), "a client that does not trust it refuses it");

    let grpc_port = app.grpc_address.unwrap().port();
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&cert)).domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{grpc_port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("gRPC over TLS");
    let answer = HealthClient::new(channel).check(HealthCheckRequest::default()).await.unwrap().into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{grpc_port}")).unwrap().connect().await;
    if let Ok(plaintext) = plaintext {
        let refused = HealthClient::new(plaintext).check(HealthCheckRequest::default()).await;
        assert!(refused.is_err(), "no plaintext gRPC on a TLS listener");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_mismatched_certificate_stops_the_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut args = common::default_args();
    args.database.data_dir = data_dir.path().to_path_buf();
    args.listen = "127.0.0.1:0".parse().unwrap();
    with_tls(&mut args);
    let mut missing = args.clone();
    missing.tls_cert = Some(data_dir.path().join("nowhere.pem"));
    let error = Server::bind(missing).await.expect_err("no certificate file");
    assert!(format!("{error:#}").contains("COFFER_TLS_CERT"), "{error:#}");
    // A key from another certificate.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other_key = data_dir.path().join("other-key.pem");
    std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
    let mut mismatched = args.clone();
    mismatched.tls_key = Some(other_key);
    let error = Server::bind(mismatched).await.expect_err("a key of another certificate");
    assert!(format!("{error:#}").contains("does not match"), "{error:#}");
    let mut not_pem = args;
    std::fs::write(data_dir.path().join("junk.pem"), "not a certificate").unwrap();
    not_pem.tls_cert = Some(data_dir.path().join("junk.pem"));
    let error = Server::bind(not_pem).await.expect_err("no certificate in the file");
    assert!(format!("{error:#}").contains("COFFER_TLS_CERT"), "{error:#}");
}
