//! `realm serve`: the native engine behind a local HTTP server. `GET /` is a page holding the
//! `<realm-qa>` widget pointed at this server; `POST /ask` takes `{"question": "...",
//! "top_k": 5}` and answers with the JSON the browser's engine returns (`PageReport`).
//!
//! HTTP/1.1 is hyper's, over tokio; the questions run on `--threads` blocking threads over one
//! engine, and at most [`WAITING_PER_THREAD`] a thread wait for one (more get a 503). Bodies
//! are bounded in size and in time (a client that stops sending gets a 408 and holds nothing
//! else up), bad requests get a 4xx with `{"error": "..."}`, a question that panics a 500,
//! and Ctrl-C (or SIGTERM) lets the requests in flight finish before it exits (a second one
//! exits at once).
//!
//! Who may ask: a page of this server, a client that is not a browser (no `Origin`), and
//! widgets on the pages of the origins `--allow-origin` names (CORS: the browser's preflight
//! `OPTIONS /ask` is answered for those, refused for the rest, and so is a POST from any other
//! origin, before it is read). On a loopback address the `Host` a request names must be a
//! loopback name too, so that a page whose name was rebound to 127.0.0.1 cannot read answers.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use realm_core::qa::engine::{MAX_TOP_K, QaEngine};
use realm_core::qa::report::PageReport;
use serde::Deserialize;

use crate::qa::QaFiles;

#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub files: QaFiles,
    /// Address to listen on. The default answers this machine only; 0.0.0.0:PORT serves the
    /// network. Port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Questions answered at once (each on its own thread, over the one engine); up to 16
    /// times as many wait their turn, and more get a 503.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body: usize,
    /// Most passages a request may ask the reader to read (its top_k; at most 100).
    #[arg(long, default_value_t = 20)]
    pub max_top_k: usize,
    /// Seconds a client has to send a request's headers (then the connection closes), and
    /// again its body (then a 408).
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,
    /// A site whose pages' widgets may ask this server, as scheme://host[:port] (e.g.
    /// https://example.org; `null` for pages opened from files), or `*` for every site.
    /// Repeatable. None by default: the page at `/` needs none, and a page of another site
    /// is refused.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
}

/// Requests that may wait for a free thread, per `--threads`.
const WAITING_PER_THREAD: usize = 16;

/// Who may ask from another origin, and the refused origins already reported on stderr.
struct Cors {
    any: bool,
    origins: HashSet<String>,
    warned: Mutex<HashSet<String>>,
}

impl Cors {
    fn new(allowed: &[String]) -> anyhow::Result<Self> {
        let mut origins = HashSet::new();
        let mut any = false;
        for origin in allowed {
            if origin == "*" {
                any = true;
            } else if origin == "null" {
                // What a page opened from a file (or a sandboxed frame) sends.
                origins.insert(origin.clone());
            } else {
                origins.insert(check_origin(origin)?);
            }
        }
        Ok(Self {
            any,
            origins,
            warned: Mutex::new(HashSet::new()),
        })
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.contains(origin)
    }

    /// Says once per origin on stderr how to let it in.
    fn refused(&self, origin: &str) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(origin.to_string());
        if first {
            eprintln!(
                "warning: a page at {origin} asked; its widget may ask only if the server \
                 runs with --allow-origin {origin}"
            );
        }
    }
}

/// An origin as browsers send it: scheme, host and an optional port, nothing after.
fn check_origin(origin: &str) -> anyhow::Result<String> {
    let bad = || {
        anyhow::anyhow!(
            "--allow-origin {origin:?}: expected scheme://host[:port] (e.g. \
             https://example.org, no path or trailing /) or *"
        )
    };
    let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
    let host_ok = !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' ']);
    if !matches!(scheme, "http" | "https") || !host_ok {
        return Err(bad());
    }
    // Browsers send the scheme and host in lower case.
    Ok(origin.to_ascii_lowercase())
}

/// Whether `host` (a `Host` header: name or address, and an optional port) names this
/// machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The widget's modules, compiled in so the server needs no checkout beside it.
const ASSETS: &[(&str, &str)] = &[
    ("/js/element.js", include_str!("../../../web/js/element.js")),
    ("/js/index.js", include_str!("../../../web/js/index.js")),
    ("/js/loader.js", include_str!("../../../web/js/loader.js")),
];

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>realm serve</title>
<link rel="icon" href="data:,">
<style>body { font: 15px/1.4 system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; }</style>
<script type="module" src="/js/element.js"></script>
</head>
<body>
<h1>Ask the corpus</h1>
<realm-qa endpoint="/">
  <span slot="label">Ask a question about the corpus</span>
  <p slot="empty">Answers come from this computer: the question, the search and the reading never leave it.</p>
</realm-qa>
</body>
</html>
"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskBody {
    question: String,
    top_k: Option<usize>,
}

/// What every request is answered from.
struct Server {
    engine: Arc<QaEngine>,
    cors: Cors,
    args: ServeArgs,
    device: &'static str,
    /// Whether the server listens on a loopback address (then `Host` must name one).
    loopback: bool,
    /// The questions being answered: `--threads` permits, each held until its question's
    /// thread is done (also when its client has gone).
    answering: Arc<tokio::sync::Semaphore>,
    /// Requests waiting for a permit.
    waiting: AtomicUsize,
}

/// A request counted among those waiting for a thread while it lives (its client may go
/// away while it waits: the count goes down all the same).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    /// Counts one more, unless `limit` wait already.
    fn enter(count: &'a AtomicUsize, limit: usize) -> Option<Self> {
        let waiting = Self(count);
        (count.fetch_add(1, Ordering::SeqCst) < limit).then_some(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Reply = Response<Full<Bytes>>;

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    if args.threads == 0 || args.max_top_k == 0 || args.request_timeout == 0 {
        bail!("--threads, --max-top-k and --request-timeout must be at least 1");
    }
    if args.max_top_k > MAX_TOP_K {
        bail!(
            "--max-top-k {} is more passages than one answer reads (at most {MAX_TOP_K})",
            args.max_top_k
        );
    }
    if args.files.top_k == 0 || args.files.top_k > args.max_top_k {
        bail!(
            "-k {} is the top_k of a request that gives none: it must be 1 to --max-top-k ({})",
            args.files.top_k,
            args.max_top_k
        );
    }
    let cors = Cors::new(&args.allow_origin)?;
    let t_load = Instant::now();
    let engine = Arc::new(args.files.open_engine()?);
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("the server has no address")?;
    listener.set_nonblocking(true)?;
    let device = match args.files.device {
        crate::commands::finetune::DeviceKind::Cpu => "cpu",
        _ => "gpu",
    };
    let server = Arc::new(Server {
        engine,
        cors,
        args: args.clone(),
        device,
        loopback: addr.ip().is_loopback(),
        answering: Arc::new(tokio::sync::Semaphore::new(args.threads)),
        waiting: AtomicUsize::new(0),
    });
    // Two threads for the connections; the questions run on blocking threads beside them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    eprintln!(
        "(loaded in {:.1} s; Ctrl-C stops)",
        t_load.elapsed().as_secs_f64()
    );
    if !addr.ip().is_loopback() {
        eprintln!(
            "note: listening on {addr}: every machine that reaches this one may ask, and any \
             name it is reached by is answered"
        );
    }
    println!("serving http://{addr}/");
    runtime.block_on(accept(listener, server))?;
    eprintln!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn accept(listener: std::net::TcpListener, server: Arc<Server>) -> anyhow::Result<()> {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let listener = tokio::net::TcpListener::from_std(listener)?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let timeout = Duration::from_secs(server.args.request_timeout);
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    eprintln!("warning: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let server = server.clone();
        let service = hyper::service::service_fn(move |request| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(handle(&server, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    eprintln!("stopping: finishing the requests in flight (Ctrl-C again stops at once)");
    tokio::select! {
        _ = graceful.shutdown() => Ok(()),
        _ = stop_signal() => bail!("stopped before the requests in flight finished"),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, body: String) -> Reply {
    let mut response = reply(status, "application/json", body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, message: &str) -> Reply {
    json(status, serde_json::json!({ "error": message }).to_string())
}

/// `response` with `name: value` added (a value the request sent back, or a constant).
fn with(mut response: Reply, name: header::HeaderName, value: &str) -> Reply {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(server: &Server, request: Request<Incoming>) -> Reply {
    let headers = request.headers();
    let host = header_str(headers, "host");
    if server.loopback
        && let Some(host) = host.filter(|h| !is_loopback_host(h))
    {
        return error(
            StatusCode::FORBIDDEN,
            &format!(
                "Host {host} is not a name of this machine: this server listens on loopback \
                 (a page reaching it through another name is refused)"
            ),
        );
    }
    // Set by browsers on every cross-origin request (and on same-origin POSTs).
    let origin = header_str(headers, "origin").map(str::to_string);
    let same_origin = |origin: &str| {
        host.is_some_and(|host| {
            origin.eq_ignore_ascii_case(&format!("http://{host}"))
                || origin.eq_ignore_ascii_case(&format!("https://{host}"))
        })
    };
    let allowed = origin
        .as_deref()
        .filter(|o| server.cors.allows(o) || same_origin(o))
        .map(str::to_string);
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    match (&method, path.as_str()) {
        (&Method::POST, "/ask") => match (&origin, &allowed) {
            (Some(origin), None) => refuse(&server.cors, origin),
            _ => {
                let response = ask(server, request).await;
                match allowed {
                    Some(origin) => with(
                        with(response, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin),
                        header::VARY,
                        "Origin",
                    ),
                    None => response,
                }
            }
        },
        // The browser's preflight before a cross-origin JSON POST.
        (&Method::OPTIONS, "/ask") if origin.is_some() => match allowed {
            Some(origin) => {
                let mut response = reply(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
                response = with(response, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
                response = with(response, header::ACCESS_CONTROL_ALLOW_METHODS, "POST");
                response = with(
                    response,
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Content-Type",
                );
                response = with(response, header::ACCESS_CONTROL_MAX_AGE, "600");
                response = with(response, header::VARY, "Origin");
                // Chromium asks before a public page reaches a private address.
                if header_str(request.headers(), "access-control-request-private-network")
                    == Some("true")
                {
                    response = with(
                        response,
                        header::HeaderName::from_static("access-control-allow-private-network"),
                        "true",
                    );
                }
                response
            }
            None => refuse(&server.cors, origin.as_deref().unwrap_or_default()),
        },
        (_, "/ask") => with(
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST /ask with a JSON body",
            ),
            header::ALLOW,
            "POST",
        ),
        (&Method::GET | &Method::HEAD, "/") => {
            reply(StatusCode::OK, "text/html; charset=utf-8", PAGE)
        }
        (&Method::GET | &Method::HEAD, p) => match ASSETS.iter().find(|(name, _)| *name == p) {
            Some((_, body)) => reply(StatusCode::OK, "text/javascript; charset=utf-8", *body),
            None => error(
                StatusCode::NOT_FOUND,
                &format!("no {p} here: GET / or POST /ask"),
            ),
        },
        (m, p) => with(
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{m} {p}: GET / or POST /ask"),
            ),
            header::ALLOW,
            "GET, HEAD",
        ),
    }
}

fn refuse(cors: &Cors, origin: &str) -> Reply {
    cors.refused(origin);
    error(
        StatusCode::FORBIDDEN,
        &format!("{origin} may not ask: start realm serve with --allow-origin {origin}"),
    )
}

async fn ask(server: &Server, request: Request<Incoming>) -> Reply {
    let args = &server.args;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over {} bytes", args.max_body),
        )
    };
    let declared = header_str(request.headers(), "content-length").and_then(|n| n.parse().ok());
    if declared.is_some_and(|n: u64| n > args.max_body as u64) {
        // Refused unread: hyper closes the connection rather than read what was declared.
        return too_large();
    }
    let body = Limited::new(request.into_body(), args.max_body);
    let timeout = Duration::from_secs(args.request_timeout);
    let body = match tokio::time::timeout(timeout, body.collect()).await {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!("the body did not arrive within {} s", args.request_timeout),
            );
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")),
        Ok(Ok(body)) => body.to_bytes(),
    };
    let parsed: AskBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not {{\"question\": string, \"top_k\": number}}: {e}"),
            );
        }
    };
    let k = parsed.top_k.unwrap_or(args.files.top_k);
    if k == 0 || k > args.max_top_k {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("top_k must be 1 to {}", args.max_top_k),
        );
    }
    if parsed.question.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "the question is empty");
    }

    // Wait for a thread, unless too many wait already.
    let Some(waiting) = Waiting::enter(&server.waiting, WAITING_PER_THREAD * args.threads) else {
        return with(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many questions are waiting: ask again shortly",
            ),
            header::RETRY_AFTER,
            "1",
        );
    };
    let permit = server.answering.clone().acquire_owned().await;
    drop(waiting);
    let Ok(permit) = permit else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    };
    let engine = server.engine.clone();
    let device = server.device;
    let answered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        engine.ask(&parsed.question, k).map(|report| {
            let page = PageReport::new(&report, &engine.corpus.passages, device);
            serde_json::to_string(&page).expect("a serialisable report")
        })
    })
    .await;
    match answered {
        Ok(Ok(page)) => json(StatusCode::OK, page),
        // The client's fault (a question of no words the tokenizer reads): 400, as in the
        // browser engine, where it is a `question` error.
        Ok(Err(e @ realm_core::Error::QuestionWithoutWords)) => {
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("answering failed: {e}"),
        ),
        // A panic while answering: this request fails, the server goes on.
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("answering failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{Waiting, is_loopback_host};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_waiting_count_is_bounded_and_falls_with_every_request_that_leaves() {
        let count = AtomicUsize::new(0);
        let first = Waiting::enter(&count, 2).expect("room for two");
        let second = Waiting::enter(&count, 2).expect("room for two");
        assert!(Waiting::enter(&count, 2).is_none(), "a third is refused");
        assert_eq!(count.load(Ordering::SeqCst), 2, "and not counted");
        drop(first); // answered, or its client went away while it waited
        let third = Waiting::enter(&count, 2).expect("room again");
        drop((second, third));
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn loopback_hosts_are_told_from_other_names() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:1",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:9",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.org",
            "evil.example:8080",
            "localhost.example.org",
            "10.0.0.1:8080",
            "[::2]:80",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
