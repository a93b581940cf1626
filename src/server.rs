//! The HTTP server: the accept loop, and a watchdog on each connection.
//!
//! poem's `Server` closes a connection only after a stretch with no I/O at
//! all, so a client sending one header byte every few seconds keeps it
//! forever, and it accepts any number of connections. This loop serves the
//! same endpoint the way poem does (hyper-util's connection that speaks
//! HTTP/1.1 with keep-alive, or h2c with prior knowledge), and adds:
//!
//! - **A cap on open connections** (`server.max_connections`). Past it the
//!   loop stops accepting: new connections wait in the kernel's listen
//!   backlog and are served as soon as one closes; past the backlog (1024),
//!   the kernel drops their SYNs and the clients retry.
//! - **A deadline for request heads** (`server.header_timeout_secs`). A new
//!   connection must deliver a complete request head within it, and so must
//!   an HTTP/1 connection from the first byte of each next request; else it
//!   is closed, without an answer. The wait for the next request on a
//!   keep-alive connection is not counted: that is the idle timeout's job.
//!   (hyper's own `header_read_timeout` counts it, so it would cut every
//!   keep-alive connection at the head deadline.)
//! - **An idle timeout** (`server.idle_timeout_secs`): a connection that
//!   moved no byte for that long, with no request being handled, is shut
//!   down gracefully; if it is still open (a response the client does not
//!   read) after another such stretch, it is closed.
//! - **A cap on HTTP/2 streams** per connection (`server.http2_max_streams`,
//!   advertised in SETTINGS; h2 refuses streams past it), and poem's limits
//!   on pending reset streams and header list size.
//!
//! A request's body has its own deadline, kept where bodies are read
//! ([`crate::api::BodyTimeout`]): a stalled upload gets 408 and the
//! connection closes.
//!
//! Shutdown is poem's: on the signal the listener closes, every connection
//! is asked to finish gracefully (in-flight requests complete, keep-alive
//! connections close), and whatever is still open after the shutdown
//! timeout is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http::{uri::Scheme, Version};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::prometheus::HTTP_CONNECTIONS;

/// The limits a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
    pub http2_max_streams: u32,
}

/// poem's defaults, kept: a peer resetting more streams than this before
/// they are accepted gets a GOAWAY ("rapid reset").
const HTTP2_MAX_PENDING_RESETS: usize = 20;
/// poem's default: the largest HTTP/2 header list accepted, in bytes.
const HTTP2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// What every connection task shares.
struct Shared {
    ep: BoxEndpoint<'static, Response>,
    builder: auto::Builder<TokioExecutor>,
    local: LocalAddr,
    limits: Limits,
    /// Raised by the shutdown signal: finish gracefully.
    stopping: CancellationToken,
    /// Raised when the shutdown timeout has passed: drop at once.
    abort: CancellationToken,
}

/// Serves `ep` on `listener` until `signal` completes, then shuts down
/// gracefully within `shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    ep: BoxEndpoint<'static, Response>,
    limits: Limits,
    signal: impl Future<Output = ()>,
    shutdown_timeout: Duration,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Head deadlines are the watchdog's (see the module documentation).
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .max_concurrent_streams(limits.http2_max_streams)
        .max_pending_accept_reset_streams(HTTP2_MAX_PENDING_RESETS)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST);
    let shared = Arc::new(Shared {
        ep,
        builder,
        local: LocalAddr(listener.local_addr()?.into()),
        limits,
        stopping: CancellationToken::new(),
        abort: CancellationToken::new(),
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut full = false;
    let mut failing = false;
    tokio::pin!(signal);
    loop {
        // A slot first: at the cap, connections wait in the backlog.
        let slot = tokio::select! {
            _ = &mut signal => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (socket, remote) = tokio::select! {
            _ = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    failing = false;
                    accepted
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather
                    // than spin (the connections that close free some),
                    // and say so once, not ten times a second.
                    if !failing {
                        tracing::warn!(error = %e, "cannot accept a connection");
                    }
                    failing = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(shared.clone(), socket, remote, slot));
        // Said once each time the cap is reached, not once per connection.
        let now_full = slots.available_permits() == 0;
        if now_full && !full {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached; new connections wait until one closes"
            );
        }
        full = now_full;
    }
    drop(listener);
    shared.stopping.cancel();
    // The line the tests and operators wait for, as poem wrote it.
    tracing::info!(
        shutdown_timeout_ms = crate::log_text::millis(shutdown_timeout),
        "initiate graceful shutdown"
    );
    // Every connection holds a slot until it ends: all slots back, all done.
    let all = slots.acquire_many(limits.max_connections);
    if tokio::time::timeout(shutdown_timeout, all).await.is_err() {
        tracing::warn!("connections still open after the shutdown timeout are dropped");
        shared.abort.cancel();
        let _ = slots.acquire_many(limits.max_connections).await;
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Serves one connection until it ends, the watchdog closes it, or the
/// server stops.
async fn connection(
    shared: Arc<Shared>,
    socket: TcpStream,
    remote: SocketAddr,
    _slot: OwnedSemaphorePermit,
) {
    let open = metrics::gauge!(HTTP_CONNECTIONS);
    open.increment(1.0);
    let watch = Arc::new(Watch::new(shared.limits.header_timeout));
    let io = TokioIo::new(Watched {
        inner: socket,
        watch: watch.clone(),
    });
    let service = hyper::service::service_fn({
        let (shared, watch) = (shared.clone(), watch.clone());
        let remote = RemoteAddr(remote.into());
        move |req: hyper::Request<Incoming>| {
            let handling = watch.request(req.version());
            let shared = shared.clone();
            let req =
                poem::Request::from((req, shared.local.clone(), remote.clone(), Scheme::HTTP));
            async move {
                let _handling = handling;
                let response = shared.ep.get_response(req).await;
                Ok::<_, Infallible>(hyper::Response::from(response))
            }
        }
    });
    let conn = shared.builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut dog = Watchdog::new(watch, shared.limits);
    let mut graceful = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            bark = dog.bark() => match bark {
                Bark::Head => {
                    tracing::debug!(%remote, "request head too slow; connection closed");
                    break;
                }
                Bark::Idle if graceful => break,
                Bark::Idle => {
                    conn.as_mut().graceful_shutdown();
                    graceful = true;
                }
            },
            _ = shared.stopping.cancelled(), if !graceful => {
                conn.as_mut().graceful_shutdown();
                graceful = true;
            }
            _ = shared.abort.cancelled() => break,
        }
    }
    open.decrement(1.0);
}

/// A connection's state as its watchdog sees it, written by the I/O
/// wrapper and the service: a few relaxed atomics per request.
struct Watch {
    started: Instant,
    header_timeout_ms: u64,
    /// When the head being read must be complete, in milliseconds since
    /// `started`; 0: no head is being waited for.
    head_deadline: AtomicU64,
    /// Whether bytes moved since the watchdog last looked.
    moved: AtomicBool,
    /// Requests being handled.
    handling: AtomicUsize,
    /// HTTP/2: heads come in frames of their own and are not timed here.
    http2: AtomicBool,
}

impl Watch {
    /// A new connection: its first head is awaited from now.
    fn new(header_timeout: Duration) -> Watch {
        let header_timeout_ms = header_timeout.as_millis().max(1) as u64;
        Watch {
            started: Instant::now(),
            header_timeout_ms,
            head_deadline: AtomicU64::new(header_timeout_ms),
            moved: AtomicBool::new(false),
            handling: AtomicUsize::new(0),
            http2: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    /// Bytes were read.
    fn read(&self) {
        self.wrote();
        // The first byte of a new HTTP/1 request starts its head's clock;
        // later bytes do not move it.
        if self.head_deadline.load(Relaxed) == 0
            && self.handling.load(Relaxed) == 0
            && !self.http2.load(Relaxed)
        {
            self.head_deadline
                .store(self.now_ms() + self.header_timeout_ms, Relaxed);
        }
    }

    /// Bytes were written (or read).
    fn wrote(&self) {
        if !self.moved.load(Relaxed) {
            self.moved.store(true, Relaxed);
        }
    }

    /// A complete head arrived: its request is being handled until the
    /// returned guard is dropped.
    fn request(self: &Arc<Self>, version: Version) -> Handling {
        self.head_deadline.store(0, Relaxed);
        if version == Version::HTTP_2 && !self.http2.load(Relaxed) {
            self.http2.store(true, Relaxed);
        }
        self.handling.fetch_add(1, Relaxed);
        Handling(self.clone())
    }
}

/// A request being handled; counted until dropped (answered or abandoned).
struct Handling(Arc<Watch>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Relaxed);
    }
}

/// Why the watchdog wants a connection closed.
enum Bark {
    /// A request head did not arrive in time.
    Head,
    /// Nothing moved, and nothing was being handled, for the idle timeout.
    Idle,
}

/// Looks at a connection's [`Watch`] a few times per timeout.
struct Watchdog {
    watch: Arc<Watch>,
    ticks: tokio::time::Interval,
    idle_timeout: Duration,
    quiet_since: Instant,
}

impl Watchdog {
    fn new(watch: Arc<Watch>, limits: Limits) -> Watchdog {
        // Deadlines are met to within a tick; a tick costs one wake-up.
        let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Watchdog {
            watch,
            ticks,
            idle_timeout: limits.idle_timeout,
            quiet_since: Instant::now(),
        }
    }

    /// Completes when the connection should close (cancel-safe: the state
    /// lives in `self`).
    async fn bark(&mut self) -> Bark {
        loop {
            self.ticks.tick().await;
            let w = &self.watch;
            let deadline = w.head_deadline.load(Relaxed);
            if deadline != 0 && w.now_ms() >= deadline {
                return Bark::Head;
            }
            // A request being handled may keep the line silent (a long
            // poll): that is not the client idling.
            if w.moved.swap(false, Relaxed) || w.handling.load(Relaxed) > 0 {
                self.quiet_since = Instant::now();
            } else if self.quiet_since.elapsed() >= self.idle_timeout {
                self.quiet_since = Instant::now();
                return Bark::Idle;
            }
        }
    }
}

/// The socket, telling the watch when bytes move.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
