//! `--html` and `--flamegraph` read by a real browser: headless Chromium driven
//! by chromedriver over its HTTP WebDriver protocol (a small client below,
//! std + serde_json only). Checks that the page loads with no console error,
//! that sorting, filtering and expanding work, that the stacks show source
//! and the inline flame graph draws, and saves a screenshot to
//! docs/html-report.png for the README.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/setup.sh installs
//! them); without them the browser test says so and passes.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURE: &str = "export_leaks.c";

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The browser and driver, or why the browser test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let chromium = match std::env::var_os("LEAKSCOPE_CHROMIUM") {
        Some(p) if Path::new(&p).is_file() => PathBuf::from(p),
        Some(p) => return Err(format!("LEAKSCOPE_CHROMIUM={} is not a file", Path::new(&p).display())),
        None => ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|n| which(n))
            .ok_or("no chromium on PATH (apt-get install chromium chromium-driver)")?,
    };
    let driver = which("chromedriver").ok_or("no chromedriver on PATH (apt-get install chromium-driver)")?;
    Ok((chromium, driver))
}

// ---------------------------------------------------------------------------
// A minimal WebDriver client.

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    // Read the header, then exactly the body it announces (the driver may
    // keep the connection open whatever we ask).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the HTTP header ended".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let mut payload = raw[split + 4..].to_vec();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let done = match length {
            Some(n) => payload.len() >= n,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if chunked {
        payload = dechunk(&payload);
    }
    let v: Value = serde_json::from_slice(&payload)
        .map_err(|e| format!("{method} {path}: bad JSON ({e}): {}", String::from_utf8_lossy(&payload)))?;
    if let Some(err) = v["value"].get("error") {
        return Err(format!("{method} {path}: {err}: {}", v["value"]["message"]));
    }
    Ok(v["value"].clone())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

impl Driver {
    fn start(chromium: &Path, driver: &Path, profile: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut d = Driver { child, port, session: String::new() };
        let started = Instant::now();
        while http(port, "GET", "/status", None).map(|v| v["ready"] != true).unwrap_or(true) {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--user-data-dir={}", profile.display()), "--window-size=1280,1000"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = http(port, "POST", "/session", Some(&caps)).unwrap_or_else(|e| panic!("new session: {e}"));
        d.session = v["sessionId"].as_str().expect("sessionId").to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        http(self.port, method, &p, body.as_ref()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn script(&self, js: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": js, "args": []})))
    }

    fn find(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.call("POST", &format!("/element/{id}/value"), Some(json!({ "text": text })));
    }

    /// Console messages and uncaught errors since the last call.
    fn console(&self) -> Vec<Value> {
        self.call("POST", "/se/log", Some(json!({"type": "browser"}))).as_array().cloned().unwrap_or_default()
    }

    fn screenshot(&self) -> Vec<u8> {
        base64_decode(self.call("GET", "/screenshot", None).as_str().expect("base64 PNG"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 byte {c}"),
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (val(c) as u32) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

fn errors_only(log: &[Value]) -> Vec<String> {
    log.iter().filter(|m| m["level"] == "SEVERE" || m["level"] == "WARNING").map(|m| m["message"].to_string()).collect()
}

// ---------------------------------------------------------------------------

/// Runs the fixture with --html and --flamegraph; returns (html, svg, report).
fn write_pages() -> (PathBuf, PathBuf, Outcome) {
    let exe = cc(FIXTURE, &["-g", "-O0"]);
    let html = scratch("report.html");
    let svg = scratch("leaks.svg");
    let o = run_opts(
        &["--html", html.to_str().unwrap(), "--flamegraph", svg.to_str().unwrap()],
        &exe,
        &["extra", "double"],
    );
    assert_eq!(o.code, Some(0), "{}", o.describe());
    assert!(html.is_file() && svg.is_file(), "no page written: {}", o.describe());
    (html, svg, o)
}

#[test]
fn the_page_is_self_contained_and_names_every_leak() {
    let (html, _, o) = write_pages();
    let page = std::fs::read_to_string(&html).unwrap();
    for bad in ["src=\"http", "href=\"http", "<link ", "url(http", "fetch(", "XMLHttpRequest"] {
        assert!(!page.contains(bad), "the page must load nothing: it has {bad}");
    }
    let p = o.process();
    assert_eq!(page.matches("<tbody class=\"rec\"").count(), leaks(p).len(), "one table record per leak");
    for l in leaks(p) {
        assert!(page.contains(l["fingerprint"].as_str().unwrap()), "fingerprint of {l} on the page");
    }
    // The marked line's source text is embedded for the snippets.
    let src = std::fs::read_to_string(fixture(FIXTURE)).unwrap();
    let node_line = src.lines().nth(line_of(FIXTURE, "LEAK:node") as usize - 1).unwrap().trim().to_string();
    assert!(page.contains(&node_line), "the source of LEAK:node is on the page: {node_line}");
}

#[test]
fn chromium_loads_sorts_expands_and_screenshots_the_page() {
    let (chromium, chromedriver) = match browser() {
        Ok(b) => b,
        Err(why) => {
            skip("chromium_loads_sorts_expands_and_screenshots_the_page", &why);
            return;
        }
    };
    let started = Instant::now();
    let (html, svg, o) = write_pages();
    let profile = scratch("chromium-profile");
    let d = Driver::start(&chromium, &chromedriver, &profile);
    d.goto(&format!("file://{}", html.display()));
    assert_eq!(d.script("return document.readyState"), "complete");
    let errors = errors_only(&d.console());
    assert!(errors.is_empty(), "console errors on load: {errors:#?}");

    let p = o.process();
    let n = leaks(p).len();
    assert_eq!(d.script("return document.querySelectorAll('#leak-table tbody.rec').length"), json!(n));
    assert_eq!(d.script("return document.getElementById('leak-count').textContent"), format!("{n} of {n} records"));

    // Sorting: bytes descending on the first click, ascending on the second.
    let bytes = "return Array.from(document.querySelectorAll('#leak-table tbody.rec')).map(r => +r.dataset.bytes)";
    let mut want: Vec<u64> = leaks(p).iter().map(|l| l["bytes"].as_u64().unwrap()).collect();
    d.click("th[data-sort=bytes]");
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(d.script(bytes), json!(want), "bytes descending");
    assert_eq!(
        d.script("return document.querySelector('th[data-sort=bytes]').getAttribute('aria-sort')"),
        "descending"
    );
    d.click("th[data-sort=bytes]");
    want.reverse();
    assert_eq!(d.script(bytes), json!(want), "bytes ascending");
    d.click("th[data-sort=site]");
    let sites: Vec<String> = serde_json::from_value(
        d.script("return Array.from(document.querySelectorAll('#leak-table tbody.rec')).map(r => r.dataset.site)"),
    )
    .unwrap();
    let mut sorted = sites.clone();
    sorted.sort_by_key(|s| s.to_lowercase());
    assert_eq!(sites, sorted, "allocation sites ascending");

    // Filtering by text.
    d.type_into("#leak-filter", "extra_cache");
    assert_eq!(d.script("return document.querySelectorAll('#leak-table tbody.rec:not([hidden])').length"), json!(1));
    assert_eq!(d.script("return document.getElementById('leak-count').textContent"), format!("1 of {n} records"));
    d.script(
        "var f = document.getElementById('leak-filter'); f.value = ''; f.dispatchEvent(new Event('input')); return 0",
    );
    assert_eq!(d.script("return document.querySelectorAll('#leak-table tbody.rec:not([hidden])').length"), json!(n));

    // Expanding the node leak shows its stack with the source around its line.
    let node_line = line_of(FIXTURE, "LEAK:node");
    let rec = format!("#leak-table tbody.rec[data-site$=':{node_line}']");
    assert_eq!(d.script(&format!("return !!document.querySelector(\"{rec} tr.leak-detail\").hidden")), true);
    d.click(&format!("{rec} tr.leak-row"));
    let detail = format!("{rec} tr.leak-detail");
    assert_eq!(d.script(&format!("return document.querySelector(\"{detail}\").hidden")), false, "expanded");
    let frames = d.script(&format!(
        "return Array.from(document.querySelectorAll(\"{detail} li.frame code.fn\")).map(e => e.textContent)"
    ));
    let frames: Vec<String> = serde_json::from_value(frames).unwrap();
    assert!(frames.starts_with(&["make_node".to_string(), "main".to_string()]), "{frames:?}");
    let hl = d.script(&format!(
        "var h = document.querySelector(\"{detail} pre.snippet span.hl\"); return h && h.textContent"
    ));
    let hl = hl.as_str().unwrap_or_else(|| panic!("no highlighted source line in the expanded stack"));
    assert!(hl.starts_with(&node_line.to_string()) && hl.contains("/* LEAK:node */"), "highlighted line: {hl:?}");
    assert_eq!(
        d.script(&format!(
            "return document.querySelectorAll(\"{detail} li.frame:first-child pre.snippet > span\").length"
        )),
        json!(7),
        "three lines either side"
    );
    d.click(&format!("{rec} tr.leak-row"));
    assert_eq!(d.script(&format!("return document.querySelector(\"{detail}\").hidden")), true, "collapsed again");

    // The heap error, with its stacks and source.
    assert_eq!(d.script("return document.querySelectorAll('#errors article.error').length"), json!(1));
    let err_line = line_of(FIXTURE, "ERROR:double");
    let hl = d.script("var h = document.querySelector('#errors pre.snippet span.hl'); return h && h.textContent");
    assert!(hl.as_str().is_some_and(|t| t.starts_with(&err_line.to_string())), "error source: {hl}");

    // The inline flame graph is drawn by inferno's SVG inside its frame.
    // The W3C web element reference, as the driver returned it.
    let frame = d.call("POST", "/element", Some(json!({"using": "css selector", "value": "#flamegraph-frame"})));
    d.call("POST", "/frame", Some(json!({ "id": frame })));
    let names = d.script("return Array.from(document.querySelectorAll('g title')).map(t => t.textContent).join('\\n')");
    let names = names.as_str().unwrap_or_default().to_string();
    assert!(names.contains("make_node") && names.contains("extra_cache"), "flame graph frames: {names}");
    d.call("POST", "/frame/parent", Some(json!({})));

    // The page as a person sees it: largest first, the node leak open.
    d.click("th[data-sort=bytes]");
    d.click(&format!("{rec} tr.leak-row"));
    d.call("POST", "/window/rect", Some(json!({"width": 1280, "height": 1500})));
    let png = d.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    let docs = workspace_root().join("docs/html-report.png");
    std::fs::write(&docs, &png).unwrap_or_else(|e| panic!("cannot save {}: {e}", docs.display()));
    let errors = errors_only(&d.console());
    assert!(errors.is_empty(), "console errors while using the page: {errors:#?}");

    // The standalone flame graph opens in the browser too.
    d.goto(&format!("file://{}", svg.display()));
    let title = d.script("return document.documentElement.nodeName + ' ' + document.querySelectorAll('g').length");
    assert!(title.as_str().is_some_and(|t| t.starts_with("svg ")), "{title}");
    let errors = errors_only(&d.console());
    assert!(errors.is_empty(), "console errors in the flame graph: {errors:#?}");
    eprintln!("browser test took {:?}", started.elapsed());
}
