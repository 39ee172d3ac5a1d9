//! Debugging aid: print what a session directory holds, unsymbolised.
//! `cargo run -p leakscope-format --example dump_session -- DIR`
fn main() {
    let dir = std::env::args().nth(1).expect("usage: dump_session DIR");
    for f in leakscope_format::session::session_files(std::path::Path::new(&dir)).unwrap() {
        match leakscope_format::session::read_session_file(&f) {
            Ok(r) => {
                let p = &r.process;
                println!("{}: pid {} ppid {} state {} argv {:?} ending {:?}", f.display(), p.pid, p.parent_pid, r.state, p.argv, p.ending);
                println!("  modules {}, stacks {}, allocs {} frees {}", p.modules.len(), p.stacks.len(), p.stats.allocs, p.stats.frees);
                for (name, v) in leakscope_format::layout::stat::NAMES.iter().zip(&p.stats.preload) {
                    println!("  {name}: {v}");
                }
                for b in &p.blocks {
                    println!("  block {:#x} {} {:?} flags {} class {:?} stack {:x?}", b.addr, b.size, b.kind, b.flags, b.class, p.stacks[b.stack as usize]);
                }
                for e in &p.errors {
                    println!("  error {:?}", e);
                }
                for d in &r.damage {
                    println!("  damage: {d}");
                }
            }
            Err(e) => println!("{e}"),
        }
    }
}
