//! leakscope: runs an unmodified program with a preload library that records
//! every allocation, then reports leaks and heap errors (see ARCHITECTURE.md).

mod args;
mod checks;
mod cmd_diff;
mod cmd_mtrace;
mod cmd_report;
mod cmd_run;
mod cmd_snapshot;
mod collect;
mod elf;
mod export_args;
mod export_out;
mod fail;
mod launch;
mod mtrace;
mod mtrace_elf;
mod output;
mod pipeline;
mod preload_path;
mod process_tree;
mod reaper;
mod render_maps;
mod render_text;
mod resolve;
mod session_dir;
mod shm_end;
mod suppressions;
mod stats;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let result = match &cli.command {
        args::Command::Run(a) => cmd_run::run(a),
        args::Command::Report(a) => cmd_report::run(a),
        args::Command::Diff(a) => cmd_diff::run(a),
        args::Command::Snapshot(a) => cmd_snapshot::run(a),
        args::Command::Mtrace(a) => cmd_mtrace::run(a),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leakscope: {e:#}");
            fail::status_of(&e) as i32
        }
    };
    // Everything that cleans up on drop (the session directory) is gone by now.
    std::process::exit(code);
}
