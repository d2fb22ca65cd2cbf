//! `realm ask` as a user runs it, over a tiny reader trained for two steps and a three-passage
//! corpus: an answer with its evidence, JSON lines from stdin, and clear errors for an empty
//! or non-UTF-8 question; a closed standard output ends it quietly; a 100,000-character
//! question is truncated with a warning and still answered.

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{assert_ok, finetune_args, realm, tiny_base};

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    args: Vec<String>,
}

fn setup() -> Option<Setup> {
    let tmp = tempfile::tempdir().unwrap();
    let (base, squad) = tiny_base(tmp.path())?;
    let run = tmp.path().join("run");
    let mut train = finetune_args(&base, &squad, &run, "2");
    train.extend(["--checkpoint-every".into(), "100".into()]);
    assert_ok(&realm(&train));
    let (corpus, index) = index_corpus(tmp.path(), &base);
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let args = vec![
        "ask".into(),
        "--model".into(),
        p(&base),
        "--reader".into(),
        p(&run),
        "--corpus".into(),
        p(&corpus),
        "--index".into(),
        p(&index),
        "-k".into(),
        "2".into(),
    ];
    let _: PathBuf = run;
    let dir = tmp.path().to_path_buf();
    Some(Setup {
        _tmp: tmp,
        dir,
        args,
    })
}

/// Three passages written as JSON lines and indexed with `model`: (corpus, index).
fn index_corpus(dir: &Path, model: &Path) -> (PathBuf, PathBuf) {
    index_lines(
        dir,
        model,
        concat!(
            "{\"title\": \"Hamlet\", \"text\": \"Hamlet is a tragedy written by William Shakespeare sometime between 1599 and 1601.\"}\n",
            "{\"title\": \"Mona Lisa\", \"text\": \"The Mona Lisa is a half-length portrait painting by the Italian artist Leonardo da Vinci. It has been described as the best known work of art in the world.\"}\n",
            "{\"title\": \"Canberra\", \"text\": \"Canberra is the capital city of Australia.\"}\n"
        ),
    )
}

/// `lines` written as dir/corpus.jsonl and indexed with `model`: (corpus, index).
fn index_lines(dir: &Path, model: &Path, lines: &str) -> (PathBuf, PathBuf) {
    let corpus = dir.join("corpus.jsonl");
    std::fs::write(&corpus, lines).unwrap();
    let index = dir.join("corpus.shard");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    assert_ok(&realm(&[
        "index".into(),
        "--model".into(),
        p(model),
        "--corpus".into(),
        p(&corpus),
        "--out".into(),
        p(&index),
    ]));
    (corpus, index)
}

/// `realm` with `args`, `input` written to its stdin (then closed), its outputs piped.
/// `realm index` stopped with Ctrl-C (SIGINT) ends with status 130 and leaves neither its
/// output nor a temporary file in the output's folder.
#[test]
fn a_stopped_index_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, _)) = tiny_base(tmp.path()) else {
        return;
    };
    // Long enough to be stopped while it embeds (seconds with the tiny model).
    let corpus = tmp.path().join("big.jsonl");
    let line = "{\"title\": \"Hamlet\", \"text\": \"Hamlet is a tragedy written by William Shakespeare sometime between 1599 and 1601.\"}\n";
    std::fs::write(&corpus, line.repeat(100_000)).unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("big.shard");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_realm"))
        .args([
            "index",
            "--model",
            &p(&base),
            "--corpus",
            &p(&corpus),
            "--out",
            &p(&out),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    common::send(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped (Ctrl-C"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

fn spawn_with_stdin(args: &[String], input: &[u8]) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child
}

fn ask_stdin(args: &[String], input: &[u8]) -> std::process::Output {
    spawn_with_stdin(args, input).wait_with_output().unwrap()
}

#[test]
fn ask_answers_with_evidence_and_refuses_bad_questions() {
    let Some(s) = setup() else { return };
    let mut one = s.args.clone();
    one.push("Who painted the Mona Lisa?".into());
    let out = realm(&one);
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("from: ") && text.contains("[[") && text.contains("ms (embed"),
        "{text}"
    );

    // JSON lines from stdin, one per question; blank lines are skipped.
    let mut json = s.args.clone();
    json.push("--json".into());
    let out = ask_stdin(
        &json,
        b"Who wrote Hamlet?\n\nWhat is the capital of Australia?\n",
    );
    assert_ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let answer = &line["answer"];
        let (start, end) = (
            answer["start"].as_u64().unwrap(),
            answer["end"].as_u64().unwrap(),
        );
        assert!(start < end, "{line}");
        assert_eq!(line["passages"].as_array().unwrap().len(), 2);
    }

    // Bad questions are clear errors.
    let mut empty = s.args.clone();
    empty.push("   ".into());
    let out = realm(&empty);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the question is empty"));
    // More passages than one answer reads: refused, not read for minutes.
    let mut many = s.args.clone();
    let k = many.iter().position(|a| a == "-k").unwrap() + 1;
    many[k] = "101".into();
    many.push("Who wrote Hamlet?".into());
    let out = realm(&many);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("k 101 is more passages than one answer reads (at most 100)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A run directory whose reader is not written yet (stopped before its end) says so.
    let unfinished = s.dir.join("unfinished");
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::write(unfinished.join("latest"), "step-00000001").unwrap();
    let mut early = s.args.clone();
    let at = early.iter().position(|a| a == "--reader").unwrap() + 1;
    early[at] = unfinished.to_str().unwrap().into();
    early.push("Who wrote Hamlet?".into());
    let out = realm(&early);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a training run that has not written a reader")
            && err.contains("realm finetune --resume"),
        "{err}"
    );
    let out = ask_stdin(&s.args, b"fine question\n\xff\xfe bad\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stdin line 2: the question is not UTF-8")
    );

    #[cfg(unix)]
    closed_stdout_ends_quietly(&json);

    // A 100,000-character question is cut to the model's length, with a warning, and answered.
    let mut long = json.clone();
    long.push("who painted the mona lisa ".repeat(4000));
    let out = realm(&long);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: the question has more wordpieces")
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["truncated"], true);
    assert!(report["answer"]["text"].is_string());

    // Questions embedded by another BERT than the reader's (`--retriever-model`, e.g. a
    // pre-trained embedder) over an index it built: MiniLM finds each question's passage,
    // which the tiny base's random embedder does not for all three.
    let Some(minilm) = common::shared_data("all-minilm-l6-v2") else {
        return;
    };
    std::fs::create_dir_all(s.dir.join("minilm")).unwrap();
    let (corpus, index) = index_corpus(&s.dir.join("minilm"), &minilm);
    let mut other = json.clone();
    let at = |flag: &str| other.iter().position(|a| a == flag).unwrap() + 1;
    let (c, i) = (at("--corpus"), at("--index"));
    other[c] = corpus.to_str().unwrap().into();
    other[i] = index.to_str().unwrap().into();
    other.extend(["--retriever-model".into(), minilm.to_str().unwrap().into()]);
    let out = ask_stdin(
        &other,
        b"Who wrote Hamlet?\nWho painted the Mona Lisa?\nWhat is the capital of Australia?\n",
    );
    assert_ok(&out);
    let top: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            line["passages"][0]["title"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(top, ["Hamlet", "Mona Lisa", "Canberra"]);
}

/// Standard output closed after the first answer (`realm ask < questions | head -1`): the
/// process ends as `cat` would, by SIGPIPE, not with Rust's panic "failed printing to stdout"
/// (exit code 101). 400 answers are more than the pipe's buffer holds.
#[cfg(unix)]
fn closed_stdout_ends_quietly(json: &[String]) {
    use std::os::unix::process::ExitStatusExt;
    let questions = "Who wrote Hamlet?\n".repeat(400);
    let mut child = spawn_with_stdin(json, questions.as_bytes());
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"answer\""), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "SIGPIPE: {:?} {stderr}",
        out.status
    );
}

/// The reader the repo ships (with its question embedder), over all-MiniLM-L6-v2 and a
/// three-passage corpus.
#[test]
fn the_shipped_reader_answers_and_a_damaged_copy_is_refused() {
    let Some(minilm) = common::shared_data("all-minilm-l6-v2") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/demo-reader");
    let (corpus, index) = index_corpus(tmp.path(), &minilm);
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let ask = |reader: &Path| {
        realm(&[
            "ask".into(),
            "--json".into(),
            "--model".into(),
            p(&minilm),
            "--reader".into(),
            p(reader),
            "--corpus".into(),
            p(&corpus),
            "--index".into(),
            p(&index),
            "-k".into(),
            "2".into(),
            "Who painted the Mona Lisa?".into(),
        ])
    };
    let out = ask(&shipped);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["answer"]["title"], "Mona Lisa", "{report}");
    assert!(
        report["answer"]["text"]
            .as_str()
            .unwrap()
            .contains("Leonardo da Vinci"),
        "{report}"
    );

    // One flipped byte in the tensors: refused by its sha256, before any answer.
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::copy(shipped.join("reader.json"), damaged.join("reader.json")).unwrap();
    let mut bytes = std::fs::read(shipped.join("reader.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(damaged.join("reader.safetensors"), bytes).unwrap();
    let out = ask(&damaged);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sha256"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The shipped question embedder is read too: a flipped byte in it is refused as well.
    let query = tmp.path().join("query");
    std::fs::create_dir_all(&query).unwrap();
    for file in ["reader.json", "reader.safetensors", "query.json"] {
        std::fs::copy(shipped.join(file), query.join(file)).unwrap();
    }
    let mut bytes = std::fs::read(shipped.join("query.safetensors")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(query.join("query.safetensors"), bytes).unwrap();
    let out = ask(&query);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("query.safetensors") && stderr.contains("sha256"),
        "{stderr}"
    );
}

/// Writes `request` as it is to `addr` and reads the reply to its end; (status, reply).
fn raw(addr: &str, request: &[u8]) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    (response[9..12].parse().unwrap(), response)
}

/// One HTTP/1.1 request to `addr`; (status, body).
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let (status, _, body) = http_with(addr, method, path, &[], body);
    (status, body)
}

/// One HTTP/1.1 request to `addr` with extra headers; (status, head, body).
fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let (status, response) = raw(addr, &[head.as_bytes(), body].concat());
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn serve_answers_as_ask_does_bounds_requests_and_stops_on_ctrl_c() {
    let Some(s) = setup() else { return };
    let question = "Who painted the Mona Lisa?";
    let mut one = s.args.clone();
    one.extend(["--json".into(), question.into()]);
    let out = realm(&one);
    assert_ok(&out);
    let asked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let mut args = s.args[1..].to_vec();
    args.splice(
        0..0,
        ["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()],
    );
    args.extend(["--max-body".into(), "2000".into()]);
    args.extend(["--request-timeout".into(), "2".into()]);
    args.extend(["--allow-origin".into(), "https://example.org".into()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("serving http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();

    // The page and the widget's modules.
    let (status, page) = http(&addr, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(page.contains("<realm-qa endpoint=\"/\">"));
    assert_eq!(http(&addr, "GET", "/js/element.js", b"").0, 200);
    assert_eq!(http(&addr, "GET", "/nothing", b"").0, 404);
    assert_eq!(http(&addr, "GET", "/ask", b"").0, 405);
    assert_eq!(http(&addr, "HEAD", "/", b"").0, 200);

    // The same answer as `realm ask`, in the page's JSON.
    let body = serde_json::json!({ "question": question, "top_k": 2 }).to_string();
    let (status, text) = http(&addr, "POST", "/ask", body.as_bytes());
    assert_eq!(status, 200, "{text}");
    let served: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(served["answer"]["text"], asked["answer"]["text"]);
    assert_eq!(served["answer"]["passageId"], asked["answer"]["passage_id"]);
    assert_eq!(served["device"], "cpu");

    // Cross-origin: a page of the allowed site passes the browser's preflight and may read
    // the answer; another site's is refused (and named on stderr), and its answer carries no
    // permission to read it.
    let site = [("Origin", "https://example.org")];
    let (status, head, _) = http_with(
        &addr,
        "OPTIONS",
        "/ask",
        &[
            site[0],
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
            ("Access-Control-Request-Private-Network", "true"),
        ],
        b"",
    );
    assert_eq!(status, 204, "{head}");
    for line in [
        "access-control-allow-origin: https://example.org",
        "access-control-allow-methods: post",
        "access-control-allow-headers: content-type",
        "access-control-allow-private-network: true",
    ] {
        assert!(head.contains(line), "{line} not in {head}");
    }
    let (status, head, text) = http_with(&addr, "POST", "/ask", &site, body.as_bytes());
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("access-control-allow-origin: https://example.org"));
    let other = [("Origin", "https://other.example")];
    let (status, _, text) = http_with(&addr, "OPTIONS", "/ask", &other, b"");
    assert_eq!(status, 403);
    assert!(
        text.contains("--allow-origin https://other.example"),
        "{text}"
    );
    // A POST needs no preflight when it is sent as text/plain: another site's is refused
    // before it is read, not answered to a page that cannot read the answer.
    let (status, head, text) = http_with(&addr, "POST", "/ask", &other, body.as_bytes());
    assert_eq!(status, 403, "{text}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    // The server's own page sends its own origin.
    let own = format!("http://{addr}");
    let (status, _, text) = http_with(&addr, "POST", "/ask", &[("Origin", &own)], body.as_bytes());
    assert_eq!(status, 200, "{text}");
    // On loopback, a name other than a loopback one (a page's name rebound to 127.0.0.1).
    let rebound = format!(
        "POST /ask HTTP/1.1\r\nHost: attacker.example:8080\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = raw(&addr, rebound.as_bytes());
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("Host attacker.example:8080"), "{text}");
    assert_eq!(http(&addr, "OPTIONS", "/ask", b"").0, 405);

    // Bad requests are 4xx with a JSON error; the server keeps answering.
    for (body, status, message) in [
        (&b"{not json"[..], 400, "not {"),
        (&br#"{"question": "   "}"#[..], 400, "the question is empty"),
        (
            &br#"{"question": "\u200b\u0000"}"#[..],
            400,
            "it has no word the tokenizer reads",
        ),
        (
            &br#"{"question": "x", "top_k": 0}"#[..],
            400,
            "top_k must be 1 to",
        ),
        (
            &br#"{"question": "x", "extra": 1}"#[..],
            400,
            "unknown field",
        ),
        (
            &br#"{"question": "x", "top_k": 21}"#[..],
            400,
            "top_k must be 1 to 20",
        ),
        (&[b' '; 5000][..], 413, "over 2000 bytes"),
    ] {
        let (got, text) = http(&addr, "POST", "/ask", body);
        assert_eq!(got, status, "{text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"].as_str().unwrap().contains(message), "{text}");
    }

    // A body declared larger than any memory is refused unread (hyper refuses the largest
    // lengths itself, 431), and the server goes on.
    for (length, refused) in [
        ("1000000000000", 413..=413),
        ("18446744073709551615", 400..=499),
    ] {
        let request = format!(
            "POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw(&addr, request.as_bytes());
        assert!(refused.contains(&status), "{length}: {text}");
    }
    // A client that stops sending its body gets a 408 after --request-timeout, and holds
    // up no one else meanwhile.
    let stalled = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            raw(
                &addr,
                b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"question\"",
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(http(&addr, "POST", "/ask", body.as_bytes()).0, 200);
    assert!(
        !stalled.is_finished(),
        "answered before the stalled body timed out"
    );
    let (status, text) = stalled.join().unwrap();
    assert_eq!(status, 408, "{text}");

    // Concurrent requests each get their own question's answer.
    let questions = [
        "Who wrote Hamlet?",
        question,
        "What is the capital of Australia?",
    ];
    let alone: Vec<serde_json::Value> = questions
        .iter()
        .map(|q| {
            let body = serde_json::json!({ "question": q, "top_k": 2 }).to_string();
            serde_json::from_str(&http(&addr, "POST", "/ask", body.as_bytes()).1).unwrap()
        })
        .collect();
    std::thread::scope(|scope| {
        for t in 0..6 {
            let (addr, alone) = (&addr, &alone);
            scope.spawn(move || {
                let i = t % questions.len();
                let body = serde_json::json!({ "question": questions[i], "top_k": 2 }).to_string();
                let (status, text) = http(addr, "POST", "/ask", body.as_bytes());
                assert_eq!(status, 200);
                let got: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(got["answer"], alone[i]["answer"]);
                assert_eq!(got["passages"], alone[i]["passages"]);
            });
        }
    });

    // Ctrl-C: a clean exit.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped"));
    assert_eq!(
        stderr
            .matches("a page at https://other.example asked")
            .count(),
        1,
        "{stderr}"
    );

    // An origin that is not scheme://host[:port] is refused before anything loads.
    let mut bad = args.clone();
    bad.extend(["--allow-origin".into(), "https://example.org/".into()]);
    let out = realm(&bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-origin \"https://example.org/\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tar archive's members in order: (name, bytes).
fn unpack(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    tar::Archive::new(bytes)
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_str().unwrap().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

#[test]
fn bundle_packs_what_the_browser_loads_and_refuses_files_that_do_not_belong_together() {
    let Some(s) = setup() else { return };
    let flag = |name: &str| {
        let at = s.args.iter().position(|a| a == name).unwrap();
        PathBuf::from(&s.args[at + 1])
    };
    let (model, reader, corpus, index) = (
        flag("--model"),
        flag("--reader"),
        flag("--corpus"),
        flag("--index"),
    );
    let bundle = |out: &Path, index: &Path, flags: &[&str]| {
        let p = |p: &Path| p.to_str().unwrap().to_string();
        let mut args = vec![
            "bundle".to_string(),
            "--model".into(),
            p(&model),
            "--reader".into(),
            p(&reader),
            "--corpus".into(),
            p(&corpus),
            "--index".into(),
            p(index),
            "--out".into(),
            p(out),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        realm(&args)
    };
    // The browser's tokenizer reads tokenizer.json, which the tiny base lacks: MiniLM's has
    // the same vocabulary. Without it the bundle is refused, naming the file.
    let out = s.dir.join("demo.realm.tar");
    let missing = bundle(&out, &index, &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("tokenizer.json is missing"));
    std::fs::copy(
        common::shared_data("all-minilm-l6-v2")
            .unwrap()
            .join("tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    assert_ok(&bundle(&out, &index, &[]));
    let bytes = std::fs::read(&out).unwrap();
    let members = unpack(&bytes);
    let expected = [
        ("config.json", model.join("config.json")),
        ("tokenizer.json", model.join("tokenizer.json")),
        ("model.safetensors", model.join("model.safetensors")),
        ("reader.json", reader.join("reader.json")),
        ("reader.safetensors", reader.join("reader.safetensors")),
        ("index.shard", index.clone()),
        ("passages.jsonl", corpus.clone()),
    ];
    assert_eq!(members.len(), expected.len());
    for ((name, data), (want, file)) in members.iter().zip(&expected) {
        assert_eq!(name, want);
        assert_eq!(data, &std::fs::read(file).unwrap(), "{name}");
    }

    // The same inputs give the same bytes; an existing bundle needs --force.
    let refused = bundle(&out, &index, &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_ok(&bundle(&out, &index, &["--force"]));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    // A fine-tuned question embedder beside the reader (two steps of `realm
    // finetune-retriever` over the same base) joins the bundle as two more members.
    let squad = common::shared_data("squad-v1.1-dev")
        .unwrap()
        .join("dev-v1.1.reconstructed.json");
    let paragraphs = common::squad_paragraphs(&squad, 8);
    let trained_on = s.dir.join("query-corpus");
    std::fs::create_dir_all(&trained_on).unwrap();
    let (q_corpus, q_index) =
        common::write_indexed_corpus(&trained_on, "corpus.jsonl", &model, &paragraphs);
    let query_run = s.dir.join("query-run");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    assert_ok(&realm(&[
        "finetune-retriever".into(),
        "--out".into(),
        p(&query_run),
        "--model".into(),
        p(&model),
        "--squad".into(),
        p(&squad),
        "--index".into(),
        p(&q_index),
        "--corpus".into(),
        p(&q_corpus),
        "--top-b".into(),
        "4".into(),
        "--steps".into(),
        "2".into(),
        "--batch".into(),
        "2".into(),
        "--limit".into(),
        "8".into(),
        "--quiet".into(),
    ]));
    // The card without its tensors is refused, naming the missing file.
    std::fs::copy(query_run.join("query.json"), reader.join("query.json")).unwrap();
    let with_query = s.dir.join("query.realm.tar");
    let incomplete = bundle(&with_query, &index, &[]);
    assert!(!incomplete.status.success());
    let stderr = String::from_utf8_lossy(&incomplete.stderr);
    assert!(stderr.contains("query.safetensors"), "{stderr}");
    assert!(!with_query.exists());
    std::fs::copy(
        query_run.join("query.safetensors"),
        reader.join("query.safetensors"),
    )
    .unwrap();
    assert_ok(&bundle(&with_query, &index, &[]));
    let members = unpack(&std::fs::read(&with_query).unwrap());
    let expected: Vec<_> = expected
        .into_iter()
        .chain([
            ("query.json", reader.join("query.json")),
            ("query.safetensors", reader.join("query.safetensors")),
        ])
        .collect();
    assert_eq!(members.len(), expected.len());
    for ((name, data), (want, file)) in members.iter().zip(&expected) {
        assert_eq!(name, want);
        assert_eq!(data, &std::fs::read(file).unwrap(), "{name}");
    }

    // --f16: the base model's tensors rounded to F16, the cards restamped, every other
    // member as it was.
    let half = s.dir.join("half.realm.tar");
    assert_ok(&bundle(&half, &index, &["--f16"]));
    let half_members = unpack(&std::fs::read(&half).unwrap());
    assert_eq!(half_members.len(), members.len());
    let card = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    for ((name, data), (_, full)) in half_members.iter().zip(&members) {
        if name == "reader.json" || name == "query.json" {
            // Restamped: the card now names the rounded model, and the one it rounds.
            let (got, mut want) = (card(data), card(full));
            let model = &half_members
                .iter()
                .find(|(n, _)| n == "model.safetensors")
                .unwrap()
                .1;
            want["base_rounded_from"] = want["base_sha256"].clone();
            want["base_sha256"] = realm_core::qa::models::sha256_hex(model).into();
            assert_eq!(got, want);
            continue;
        }
        if name != "model.safetensors" {
            assert_eq!(data, full, "{name}");
            continue;
        }
        let (narrow, wide) = (
            safetensors::SafeTensors::deserialize(data).unwrap(),
            safetensors::SafeTensors::deserialize(full).unwrap(),
        );
        assert_eq!(narrow.len(), wide.len());
        for (tensor, view) in wide.iter() {
            let got = narrow.tensor(tensor).unwrap();
            assert_eq!(got.dtype(), safetensors::Dtype::F16, "{tensor}");
            assert_eq!(got.shape(), view.shape(), "{tensor}");
            if view.dtype() == safetensors::Dtype::F32 {
                let want: Vec<u8> = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                    .collect();
                assert_eq!(got.data(), want.as_slice(), "{tensor}");
            }
        }
    }
    // And the reader and the question embedder answer over the rounded model, as the browser
    // engine would load them.
    let unpacked = s.dir.join("half");
    std::fs::create_dir_all(&unpacked).unwrap();
    for (name, data) in &half_members {
        std::fs::write(unpacked.join(name), data).unwrap();
    }
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let half_dir = p(&unpacked);
    let answered = realm(&[
        "ask".into(),
        "--model".into(),
        half_dir.clone(),
        "--reader".into(),
        half_dir.clone(),
        "--corpus".into(),
        p(&unpacked.join("passages.jsonl")),
        "--index".into(),
        p(&unpacked.join("index.shard")),
        "Who wrote Hamlet?".into(),
    ]);
    assert_ok(&answered);

    // An index of another corpus is refused before anything is written.
    let other = s.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, two_index) = index_lines(
        &other,
        &model,
        "{\"title\": \"A\", \"text\": \"One passage.\"}\n{\"title\": \"B\", \"text\": \"Two.\"}\n",
    );
    let wrong = s.dir.join("wrong.realm.tar");
    let out = bundle(&wrong, &two_index, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds 2 vectors for the 3 passages"),
        "{stderr}"
    );
    assert!(!wrong.exists());

    // So is one of another corpus of the same length (found by the corpus fingerprint the
    // shard records), by bundle and by ask.
    let same_length = s.dir.join("same-length");
    std::fs::create_dir_all(&same_length).unwrap();
    let (_, three_index) = index_lines(
        &same_length,
        &model,
        concat!(
            "{\"title\": \"A\", \"text\": \"One passage.\"}\n",
            "{\"title\": \"B\", \"text\": \"Two.\"}\n",
            "{\"title\": \"C\", \"text\": \"Three.\"}\n"
        ),
    );
    let out = bundle(&wrong, &three_index, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not index") && stderr.contains("built from another corpus"),
        "{stderr}"
    );
    assert!(!wrong.exists());
    let mut ask = s.args.clone();
    let at = ask.iter().position(|a| a == "--index").unwrap() + 1;
    ask[at] = p(&three_index);
    ask.push("Who wrote Hamlet?".into());
    let out = realm(&ask);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("built from another corpus") && stderr.contains("realm index --corpus"),
        "{stderr}"
    );
}

/// The QA issue's budget for the one binary artifact the repo carries: the shipped model's
/// files (reader and question embedder) in at most 25 MB.
#[test]
fn the_shipped_model_stays_within_its_25_mb_budget() {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/demo-reader");
    let bytes: u64 = std::fs::read_dir(&shipped)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        bytes <= 25_000_000,
        "{} holds {bytes} bytes",
        shipped.display()
    );
    assert!(shipped.join("query.safetensors").is_file());
}
