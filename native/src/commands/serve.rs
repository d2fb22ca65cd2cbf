//! `realm serve`: the native engine behind a local HTTP server. `GET /` is a page holding the
//! `<realm-qa>` widget pointed at this server; `POST /ask` takes `{"question": "...",
//! "top_k": 5}` and answers with the JSON the browser's engine returns (`PageReport`). Bodies
//! are bounded, bad requests get a 4xx with `{"error": "..."}`, requests are served on several
//! threads over one engine, and Ctrl-C lets the requests in flight finish before it exits.
//! Widgets on other sites' pages may ask it only from the origins `--allow-origin` names (CORS:
//! the browser's preflight `OPTIONS /ask` is answered for those, refused for the rest).

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use realm_core::qa::engine::QaEngine;
use realm_core::qa::report::PageReport;
use serde::Deserialize;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::qa::QaFiles;

#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub files: QaFiles,
    /// Address to listen on. The default answers this machine only; 0.0.0.0:PORT serves the
    /// network. Port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Requests answered at once (each on its own thread, over the one engine).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body: usize,
    /// Most passages a request may ask the reader to read (its top_k).
    #[arg(long, default_value_t = 20)]
    pub max_top_k: usize,
    /// A site whose pages' widgets may ask this server, as scheme://host[:port] (e.g.
    /// https://example.org; `null` for pages opened from files), or `*` for every site. Repeatable. None by default: the page at
    /// `/` needs none, and a page of another site cannot read the answers.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
}

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
        if self.warned.lock().unwrap().insert(origin.to_string()) {
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

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    if args.threads == 0 || args.max_top_k == 0 {
        bail!("--threads and --max-top-k must be at least 1");
    }
    if args.files.top_k == 0 || args.files.top_k > args.max_top_k {
        bail!(
            "-k {} is the top_k of a request that gives none: it must be 1 to --max-top-k ({})",
            args.files.top_k,
            args.max_top_k
        );
    }
    let cors = Arc::new(Cors::new(&args.allow_origin)?);
    let t_load = Instant::now();
    let engine = Arc::new(args.files.open_engine()?);
    let server = Arc::new(
        Server::http(args.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?,
    );
    let addr = server
        .server_addr()
        .to_ip()
        .context("the server has no IP address")?;
    eprintln!(
        "(loaded in {:.1} s; Ctrl-C stops)",
        t_load.elapsed().as_secs_f64()
    );
    println!("serving http://{addr}/");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let device = match args.files.device {
        crate::commands::finetune::DeviceKind::Cpu => "cpu",
        _ => "gpu",
    };
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (server, engine, stop, args, cors) = (
                server.clone(),
                engine.clone(),
                stop.clone(),
                args.clone(),
                cors.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(request)) => {
                            let _ = serve_one(request, &engine, &args, &cors, device);
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("warning: accepting a connection: {e}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    eprintln!("stopped");
    Ok(())
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn json(status: u16, body: String) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Cache-Control", "no-store"))
}

fn error(status: u16, message: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    json(status, serde_json::json!({ "error": message }).to_string())
}

/// The value of the request's header `name`, if it has one.
fn header_value(request: &Request, name: &'static str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

fn serve_one(
    mut request: Request,
    engine: &QaEngine,
    args: &ServeArgs,
    cors: &Cors,
    device: &'static str,
) -> std::io::Result<()> {
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    // Set by browsers on every cross-origin request (and on same-origin POSTs).
    let origin = header_value(&request, "Origin");
    let allowed = origin.as_deref().filter(|o| cors.allows(o));
    let response = match (request.method(), path.as_str()) {
        (Method::Post, "/ask") => {
            let response = ask(&mut request, engine, args, device);
            match allowed {
                Some(origin) => response
                    .with_header(header("Access-Control-Allow-Origin", origin))
                    .with_header(header("Vary", "Origin")),
                None => response,
            }
        }
        // The browser's preflight before a cross-origin JSON POST.
        (Method::Options, "/ask") if origin.is_some() => match allowed {
            Some(origin) => {
                let mut response = Response::from_data(Vec::new())
                    .with_status_code(204)
                    .with_header(header("Access-Control-Allow-Origin", origin))
                    .with_header(header("Access-Control-Allow-Methods", "POST"))
                    .with_header(header("Access-Control-Allow-Headers", "Content-Type"))
                    .with_header(header("Access-Control-Max-Age", "600"))
                    .with_header(header("Vary", "Origin"));
                // Chromium asks before a public page reaches a private address.
                if header_value(&request, "Access-Control-Request-Private-Network").as_deref()
                    == Some("true")
                {
                    response = response
                        .with_header(header("Access-Control-Allow-Private-Network", "true"));
                }
                response
            }
            None => {
                let origin = origin.as_deref().unwrap_or_default();
                cors.refused(origin);
                error(
                    403,
                    &format!(
                        "{origin} may not ask: start realm serve with --allow-origin {origin}"
                    ),
                )
            }
        },
        (_, "/ask") => {
            error(405, "use POST /ask with a JSON body").with_header(header("Allow", "POST"))
        }
        (Method::Get, "/") => Response::from_string(PAGE)
            .with_header(header("Content-Type", "text/html; charset=utf-8")),
        (Method::Get, p) => match ASSETS.iter().find(|(name, _)| *name == p) {
            Some((_, body)) => Response::from_string(*body)
                .with_header(header("Content-Type", "text/javascript; charset=utf-8")),
            None => error(404, &format!("no {p} here: GET / or POST /ask")),
        },
        (m, p) => error(405, &format!("{m} {p}: GET / or POST /ask")),
    };
    request.respond(response)
}

fn ask(
    request: &mut Request,
    engine: &QaEngine,
    args: &ServeArgs,
    device: &'static str,
) -> Response<std::io::Cursor<Vec<u8>>> {
    if request.body_length().is_some_and(|n| n > args.max_body) {
        return error(413, &format!("the body is over {} bytes", args.max_body));
    }
    let mut body = Vec::new();
    if let Err(e) = request
        .as_reader()
        .take(args.max_body as u64 + 1)
        .read_to_end(&mut body)
    {
        return error(400, &format!("reading the body: {e}"));
    }
    if body.len() > args.max_body {
        return error(413, &format!("the body is over {} bytes", args.max_body));
    }
    let parsed: AskBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                400,
                &format!("the body is not {{\"question\": string, \"top_k\": number}}: {e}"),
            );
        }
    };
    let k = parsed.top_k.unwrap_or(args.files.top_k);
    if k == 0 || k > args.max_top_k {
        return error(400, &format!("top_k must be 1 to {}", args.max_top_k));
    }
    if parsed.question.trim().is_empty() {
        return error(400, "the question is empty");
    }
    match engine.ask(&parsed.question, k) {
        Ok(report) => {
            let page = PageReport::new(&report, &engine.corpus.passages, device);
            json(
                200,
                serde_json::to_string(&page).expect("a serialisable report"),
            )
        }
        // The client's fault (a question of no words the tokenizer reads): 400, as in the
        // browser engine, where it is a `question` error.
        Err(e @ realm_core::Error::QuestionWithoutWords) => error(400, &e.to_string()),
        Err(e) => error(500, &format!("answering failed: {e}")),
    }
}
