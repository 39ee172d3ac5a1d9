//! On-demand checks (`leakscope_check()` from the program, or `run
//! --check-on-signal`): while the program runs, watch its session files for
//! new reachability results (each on-demand check the preload runs bumps a
//! counter in the file header) and print a report for each, on stderr.

use crate::args::OutputArgs;
use crate::render_text::{self, TextOptions};
use leakscope_analyse::{analyse, Options, Symbolizer};
use leakscope_format::model::Trace;
use leakscope_format::session;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Watcher {
    pub fn start(dir: PathBuf, out: &OutputArgs) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let opts = TextOptions { show_reachable: out.show_reachable, show_mappings: out.show_mappings };
        let color = out.color.choice();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || watch(&dir, &flag, &opts, color));
        Watcher { stop, thread }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

fn watch(dir: &std::path::Path, stop: &AtomicBool, opts: &TextOptions, color: anstream::ColorChoice) {
    let mut seen: HashMap<PathBuf, u64> = HashMap::new();
    // Made on first use: setting it up takes a while, and polling must start at once.
    let mut sym: Option<Symbolizer> = None;
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(Duration::from_millis(100));
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(files) = session::session_files(dir) else { continue };
        for f in files {
            let Some((pid, seq)) = session::read_scan_seq(&f) else { continue };
            let before = seen.insert(f.clone(), seq).unwrap_or(0);
            if seq <= before || stop.load(Ordering::Acquire) {
                continue;
            }
            let read = match session::read_session_file(&f) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("leakscope: on-demand check #{seq} of process {pid}: {e}");
                    continue;
                }
            };
            if read.state != leakscope_format::layout::state::RUNNING {
                // The scan at exit, seen before the process marked itself ended: the final report has it.
                continue;
            }
            let trace = Trace { processes: vec![read.process] };
            let report = analyse(&trace, sym.get_or_insert_with(Symbolizer::new), &Options::default());
            let text = render_text::render_with(&report, opts);
            let mut w = anstream::AutoStream::new(std::io::stderr(), color);
            let _ = write!(w, "=={pid}== leakscope: on-demand check #{seq}; the program keeps running\n{text}");
        }
    }
}
