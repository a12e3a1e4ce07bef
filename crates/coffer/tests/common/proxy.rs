//! A TCP proxy on loopback that a test can cut and restore: the server under test talks
//! to a real service (Redis, a broker) through it, and the test takes the service away
//! mid-run without stopping the shared service itself.
//!
//! Cut: every open connection is dropped and new ones are refused (nothing listens on
//! the port); restored: the same port listens again.

use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::Mutex, task::JoinHandle};

/// The proxy; dropping it cuts it.
pub struct Proxy {
    /// Where clients connect.
    pub address: SocketAddr,
    upstream: SocketAddr,
    running: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let proxy = Self { address, upstream, running: Arc::default() };
        *proxy.running.lock().await = Some(tokio::spawn(serve(listener, upstream)));
        proxy
    }

    /// Drops every connection and stops listening.
    pub async fn cut(&self) {
        if let Some(task) = self.running.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens on the same port again.
    pub async fn restore(&self) {
        let mut running = self.running.lock().await;
        if running.is_none() {
            let listener = TcpListener::bind(self.address).await.expect("the proxy's port is free again");
            *running = Some(tokio::spawn(serve(listener, self.upstream)));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.try_lock()
            && let Some(task) = running.take()
        {
            task.abort();
        }
    }
}

/// Accepts and forwards until aborted; aborting it aborts every connection it carries.
async fn serve(listener: TcpListener, upstream: SocketAddr) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else { continue };
        connections.spawn(async move {
            if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        // Forget the finished ones, so a long test does not pile them up.
        while connections.try_join_next().is_some() {}
    }
}
