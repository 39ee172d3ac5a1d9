//! `--stats` / LEAKSCOPE_STATS=1: what the traced program paid for tracing,
//! from the preload's counters, and what the report cost afterwards.

use leakscope_format::layout::stat;
use leakscope_format::model::Trace;
use std::fmt::Write;
use std::time::Duration;

pub fn render(trace: &Trace, analysis: Duration) -> String {
    let mut out = String::new();
    for p in &trace.processes {
        let c = |i: usize| p.stats.preload.get(i).copied().unwrap_or(0);
        let calls = p.stats.allocs + p.stats.frees;
        let captures = c(stat::CAPTURES);
        let unwound = c(stat::FRAMES_UNWOUND);
        let reused = c(stat::FRAMES_REUSED);
        let per = |v: u64| if captures == 0 { 0.0 } else { v as f64 / captures as f64 };
        let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
        let _ = writeln!(out, "=={}== leakscope stats", p.pid);
        let _ = writeln!(out, "  allocation calls   {} ({} allocations, {} releases)", calls, p.stats.allocs, p.stats.frees);
        let _ = writeln!(out, "  stack captures     {captures}, {:.1} frames deep on average", per(unwound + reused));
        let _ = writeln!(
            out,
            "  frames             {:.1} unwound + {:.1} reused per capture ({:.0}% reused)",
            per(unwound),
            per(reused),
            pct(reused, unwound + reused)
        );
        let _ = writeln!(
            out,
            "  stack interning    {:.0}% of lookups answered by the thread's recent-stack cache, {} by the shared store",
            pct(c(stat::RECENT_HITS), c(stat::RECENT_HITS) + c(stat::STORE_LOOKUPS)),
            c(stat::STORE_LOOKUPS)
        );
        let _ = writeln!(
            out,
            "  capture time       {:.3} s, {:.0} ns per capture (clock read on 1 capture in 64)",
            c(stat::CAPTURE_NS) as f64 / 1e9,
            per(c(stat::CAPTURE_NS))
        );
        let ops = c(stat::TABLE_OPS);
        if ops > 0 {
            let _ = writeln!(
                out,
                "  live table         {:.3} s, {:.0} ns per insert or remove (clock read on 1 in 256)",
                c(stat::TABLE_NS) as f64 / 1e9,
                c(stat::TABLE_NS) as f64 / ops as f64
            );
        }
        let _ = writeln!(
            out,
            "  fast steps         {:.1}% of unwound frames stepped with a learned rule ({} rules learned)",
            pct(c(stat::FAST_STEPS), unwound),
            c(stat::RULES_LEARNED)
        );
        let _ = writeln!(
            out,
            "  unwind rules       {:.1}% of framehop steps evaluated DWARF CFI ({} misses, {} hits)",
            pct(c(stat::RULE_MISSES), c(stat::RULE_MISSES) + c(stat::RULE_HITS)),
            c(stat::RULE_MISSES),
            c(stat::RULE_HITS)
        );
        if c(stat::WALKS_CHECKED) > 0 {
            let _ = writeln!(
                out,
                "  walk cross-check   {} captures compared with a full walk, {} differed",
                c(stat::WALKS_CHECKED),
                c(stat::WALK_MISMATCHES)
            );
        }
        let _ = writeln!(out, "  threads            {}", c(stat::THREADS));
    }
    let _ = writeln!(out, "leakscope: analysis and symbolisation took {:.3} s", analysis.as_secs_f64());
    out
}
