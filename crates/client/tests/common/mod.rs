//! Test harness: a real Coffer server in this process (SQLite in a temporary directory,
//! gRPC on a port of its own), as `crates/coffer/tests/common` starts one, and a proxy
//! in front of it that can lose answers on purpose — the server commits, the client
//! hears `UNAVAILABLE` — which is what a retry with the same ids must survive.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use coffer::{
    config::{GrpcListen, ServeArgs},
    grpc::proto::{
        self,
        ledger_service_client::LedgerServiceClient,
        ledger_service_server::{LedgerService, LedgerServiceServer},
    },
    server::Server,
};
use coffer_client::{Account, AccountFlags, Client, RetryPolicy, Transfer};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming, transport::Channel};

/// The admin key of every test server.
pub const ADMIN_KEY: &str = "client-test-admin-key-0123456789";

/// The ledger every test account is on (USD).
pub const USD: u32 = 840;

/// A Coffer server running in this process.
pub struct TestServer {
    /// The gRPC endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub grpc_address: SocketAddr,
    data_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Every setting at its default, as `coffer serve` with no flags has it, but for the
/// data directory, the listeners (HTTP on port 0, gRPC on `grpc`) and the admin key.
fn serve_args(data_dir: &std::path::Path, grpc: SocketAddr) -> ServeArgs {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        args: ServeArgs,
    }
    let mut args = <Defaults as clap::Parser>::try_parse_from(["coffer"]).expect("the defaults parse").args;
    args.database.data_dir = data_dir.to_path_buf();
    args.database.database_url = None;
    args.listen = "127.0.0.1:0".parse().unwrap();
    args.grpc_listen = GrpcListen(Some(grpc));
    args.admin_api_key = Some(ADMIN_KEY.parse().unwrap());
    args.argon2_memory_kib = 1024;
    args
}

impl TestServer {
    /// A fresh server and database, gRPC on port 0; returns once it listens.
    pub async fn start() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        Self::start_in(data_dir, "127.0.0.1:0".parse().unwrap()).await
    }

    /// A server on `data_dir`'s database with gRPC on `grpc`; returns once it listens.
    pub async fn start_in(data_dir: tempfile::TempDir, grpc: SocketAddr) -> Self {
        let server = Server::bind(serve_args(data_dir.path(), grpc)).await.expect("the server starts");
        let grpc_address = server.grpc_local_addr().expect("the server serves gRPC");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            endpoint: format!("http://{grpc_address}"),
            grpc_address,
            data_dir,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits until it has shut down (the data stays).
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the server and starts another on the same database and gRPC port.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap());
        Self::start_in(data_dir, self.grpc_address).await
    }

    /// A client of this server, connected now.
    pub async fn client(&self) -> Client {
        Client::builder(&self.endpoint, ADMIN_KEY).connect().await.expect("the client connects")
    }
}

/// A port nothing listens on now (bound and released), for a server started later.
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A retry policy patient enough to ride out a server restart in a debug build.
pub fn patient() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 30,
        backoff_initial: std::time::Duration::from_millis(20),
        backoff_max: std::time::Duration::from_millis(250),
    }
}

/// An account on USD: a wallet (it may not go below zero) or an unconstrained one.
pub fn account(id: u128, wallet: bool) -> Account {
    let flags = if wallet { AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS } else { AccountFlags::empty() };
    Account { id, ledger: USD, code: 1, flags, ..Account::default() }
}

/// A plain USD transfer.
pub fn transfer(id: u128, debit: u128, credit: u128, amount: u64) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: USD,
        code: 1,
        ..Transfer::default()
    }
}

/// A fresh random 128-bit id (never zero or all ones).
pub fn new_id() -> u128 {
    (rand::random::<u128>() >> 1) | 1
}

/// A `LedgerService` in front of a real server that forwards every call, but can be
/// told to lose answers: the server commits, the caller hears `UNAVAILABLE`.
#[derive(Clone)]
pub struct LosingProxy {
    upstream: LedgerServiceClient<Channel>,
    /// The next `CreateTransfers` is forwarded, and its answer replaced by UNAVAILABLE.
    pub lose_next_answer: Arc<AtomicBool>,
    /// The next stream's first batch is forwarded and committed, then the stream ends
    /// with UNAVAILABLE instead of its answer.
    pub lose_next_stream: Arc<AtomicBool>,
    /// Streams opened through the proxy.
    pub streams: Arc<AtomicU64>,
}

impl LosingProxy {
    /// Serves a proxy of `upstream` (a gRPC endpoint) on port 0; returns its endpoint.
    pub async fn start(upstream: &str) -> (Self, String) {
        let channel = Channel::from_shared(upstream.to_owned()).unwrap().connect().await.unwrap();
        let proxy = Self {
            upstream: LedgerServiceClient::new(channel),
            lose_next_answer: Arc::default(),
            lose_next_stream: Arc::default(),
            streams: Arc::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = LedgerServiceServer::new(proxy.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        (proxy, format!("http://{address}"))
    }
}

/// `message` with the caller's `authorization`, for the upstream server.
fn forwarded<T, U>(request: &Request<T>, message: U) -> Request<U> {
    let mut forwarded = Request::new(message);
    if let Some(authorization) = request.metadata().get("authorization") {
        forwarded.metadata_mut().insert("authorization", authorization.clone());
    }
    forwarded
}

type Answers =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::CreateTransfersStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LedgerService for LosingProxy {
    async fn create_accounts(
        &self,
        request: Request<proto::CreateAccountsRequest>,
    ) -> Result<Response<proto::CreateAccountsResponse>, Status> {
        let upstream = forwarded(&request, request.get_ref().clone());
        self.upstream.clone().create_accounts(upstream).await
    }

    async fn create_transfers(
        &self,
        request: Request<proto::CreateTransfersRequest>,
    ) -> Result<Response<proto::CreateTransfersResponse>, Status> {
        let upstream = forwarded(&request, request.get_ref().clone());
        let answer = self.upstream.clone().create_transfers(upstream).await?;
        if self.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(Status::unavailable("the proxy lost the answer"));
        }
        Ok(answer)
    }

    async fn lookup_accounts(
        &self,
        request: Request<proto::LookupAccountsRequest>,
    ) -> Result<Response<proto::LookupAccountsResponse>, Status> {
        let upstream = forwarded(&request, request.get_ref().clone());
        self.upstream.clone().lookup_accounts(upstream).await
    }

    async fn lookup_transfers(
        &self,
        request: Request<proto::LookupTransfersRequest>,
    ) -> Result<Response<proto::LookupTransfersResponse>, Status> {
        let upstream = forwarded(&request, request.get_ref().clone());
        self.upstream.clone().lookup_transfers(upstream).await
    }

    async fn get_account_transfers(
        &self,
        _: Request<proto::GetAccountTransfersRequest>,
    ) -> Result<Response<proto::GetAccountTransfersResponse>, Status> {
        Err(Status::unimplemented("not proxied"))
    }

    async fn get_account_balances(
        &self,
        _: Request<proto::GetAccountBalancesRequest>,
    ) -> Result<Response<proto::GetAccountBalancesResponse>, Status> {
        Err(Status::unimplemented("not proxied"))
    }

    type CreateTransfersStreamStream = Answers;

    /// Forwards batches and answers both ways; when `lose_next_stream` is set, forwards
    /// only the first batch and, once the server has answered it, ends the stream with
    /// UNAVAILABLE instead.
    async fn create_transfers_stream(
        &self,
        request: Request<Streaming<proto::CreateTransfersStreamRequest>>,
    ) -> Result<Response<Answers>, Status> {
        self.streams.fetch_add(1, Ordering::SeqCst);
        let lose = self.lose_next_stream.swap(false, Ordering::SeqCst);
        let (batches, upstream_batches) = mpsc::channel(4);
        let upstream = forwarded(&request, ReceiverStream::new(upstream_batches));
        let mut incoming = request.into_inner();
        tokio::spawn(async move {
            while let Ok(Some(batch)) = incoming.message().await {
                if batches.send(batch).await.is_err() || lose {
                    // Losing: the first batch only; keep the upstream stream open until
                    // the answer has been read (dropping `batches` here would end it).
                    std::future::pending::<()>().await;
                }
            }
        });
        let mut answers = self.upstream.clone().create_transfers_stream(upstream).await?.into_inner();
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let answer = answers.message().await.transpose();
                let Some(answer) = answer else { return };
                let answer = if lose {
                    let committed = answer.is_ok();
                    let _ = sender
                        .send(Err(Status::unavailable(format!(
                            "the proxy lost the answer (committed: {committed})"
                        ))))
                        .await;
                    return;
                } else {
                    answer
                };
                if sender.send(answer).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
