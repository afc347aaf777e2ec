//! Held connections: idle and half-sent connections kept open on each listener, reopened
//! when probegate closes them and held through the shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Client;
use crate::report::HeldReport;

pub struct Holders {
    listener: &'static str,
    tasks: Vec<tokio::task::JoinHandle<HolderStats>>,
    open: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
}

#[derive(Default)]
struct HolderStats {
    opened: u64,
    closed_by_server: u64,
    connect_failures: u64,
    lives: Vec<f64>,
}

impl Holders {
    /// `count` connections, half idle (nothing sent, not even a TLS hello) and half with
    /// a request head half sent; each reopened when probegate closes it, until SIGTERM
    /// (those open then are held through the shutdown).
    pub fn start(
        listener: &'static str,
        addr: SocketAddr,
        count: usize,
        tls: bool,
        client: Arc<Client>,
        stop: Arc<AtomicBool>,
        terminated: Arc<AtomicBool>,
    ) -> Holders {
        let open = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let tasks = (0..count)
            .map(|i| {
                let (client, stop, terminated, open, peak) = (
                    client.clone(),
                    stop.clone(),
                    terminated.clone(),
                    open.clone(),
                    peak.clone(),
                );
                tokio::spawn(async move {
                    // Spread the first connects over a second.
                    tokio::time::sleep(Duration::from_millis((i % 1000) as u64)).await;
                    let mut stats = HolderStats::default();
                    let half_sent = i % 2 == 1;
                    while !stop.load(Ordering::Acquire) && !terminated.load(Ordering::Acquire) {
                        let opened = Instant::now();
                        let held = hold(
                            addr,
                            tls && half_sent,
                            half_sent,
                            &client,
                            &open,
                            &peak,
                            &stop,
                        )
                        .await;
                        match held {
                            Ok(true) => {
                                stats.opened += 1;
                                stats.closed_by_server += 1;
                                stats.lives.push(opened.elapsed().as_secs_f64());
                            }
                            Ok(false) => stats.opened += 1,
                            Err(_) => stats.connect_failures += 1,
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    stats
                })
            })
            .collect();
        Holders {
            listener,
            tasks,
            open,
            peak,
        }
    }

    pub async fn finish(self) -> HeldReport {
        let mut all = HolderStats::default();
        for t in self.tasks {
            let s = t.await.unwrap();
            all.opened += s.opened;
            all.closed_by_server += s.closed_by_server;
            all.connect_failures += s.connect_failures;
            all.lives.extend(s.lives);
        }
        all.lives.sort_by(f64::total_cmp);
        let _ = self.open;
        HeldReport {
            listener: self.listener,
            peak_open: self.peak.load(Ordering::Relaxed),
            opened: all.opened,
            closed_by_server: all.closed_by_server,
            connect_failures: all.connect_failures,
            median_life: all.lives.get(all.lives.len() / 2).copied().unwrap_or(0.0),
        }
    }
}

/// Holds one connection until probegate closes it (`Ok(true)`) or the run ends.
async fn hold(
    addr: SocketAddr,
    tls: bool,
    half_sent: bool,
    client: &Client,
    open: &AtomicU64,
    peak: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    let head: &[u8] = if tls {
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: appli"
    } else {
        b"GET /readyz HTTP/1.1\r\nHost: local"
    };
    let _counted = Counted::new(open, peak);
    let ended = async {
        while !stop.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    if tls {
        let mut stream = tokio::time::timeout(Duration::from_secs(10), client.tls())
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        stream.write_all(head).await?;
        stream.flush().await?;
        tokio::select! {
            _ = wait_closed(&mut stream) => Ok(true),
            _ = ended => Ok(false),
        }
    } else {
        let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        if half_sent {
            stream.write_all(head).await?;
        }
        tokio::select! {
            _ = wait_closed(&mut stream) => Ok(true),
            _ = ended => Ok(false),
        }
    }
}

/// Reads until the other side closes.
async fn wait_closed(read: &mut (impl tokio::io::AsyncRead + Unpin)) {
    let mut buf = [0u8; 1024];
    while let Ok(1..) = read.read(&mut buf).await {}
}

/// Counts a held connection while it lives.
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn new(open: &'a AtomicU64, peak: &AtomicU64) -> Counted<'a> {
        let now = open.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        Counted(open)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
