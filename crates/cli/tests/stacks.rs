//! Where leaks are attributed: threads, a dlopen()ed-then-unloaded library, a
//! library without debug information, and call chains at -O0 and at
//! -O2 -fomit-frame-pointer.

mod common;

use common::*;

#[test]
fn leaks_from_four_concurrent_threads_are_counted_exactly() {
    let exe = cc("threads.c", &["-g", "-O0", "-pthread"]);
    let o = run_ok(&exe, &[]);
    assert!(o.stdout.contains("threads done"), "{}", o.describe());
    let p = o.process();
    let leak = leak_at(p, "worker", "threads.c", "LEAK:worker");
    // 500 blocks per thread, of 16, 32, 48 and 64 bytes.
    assert_leak(leak, "definite", 500 * (16 + 32 + 48 + 64), 2000, "malloc");
    assert_no_leak_at_line(p, "threads.c", "FREED:worker-tmp");
    assert_no_leak_at_line(p, "threads.c", "FREED:worker-array");
    assert_eq!(leaks(p).len(), 1, "thread stacks and TLS are not leaks:{}", show_leaks(p));
    assert!(errors(p).is_empty(), "{}", show_leaks(p));
}

/// Threads one after another: each new thread starts on its predecessor's
/// stack memory and with its predecessor's per-thread state (kept for reuse),
/// so a walk carried over from the previous thread would splice in the wrong
/// chain or depth. Every generation's leak must show its own.
#[test]
fn threads_started_one_after_another_keep_their_own_stacks() {
    let exe = cc("thread_generations.c", &["-g", "-O2", "-fomit-frame-pointer", "-fno-optimize-sibling-calls", "-pthread"]);
    let o = run_ok(&exe, &[]);
    assert!(o.stdout.contains("generations done"), "{}", o.describe());
    let p = o.process();
    let file = fixture_file("thread_generations.c");
    // (leaf function, its line, bytes per block) -> blocks per number of `descend` frames.
    let mut seen = std::collections::BTreeMap::new();
    for leak in leaks(p) {
        let st = frames(&leak["stack"]);
        let leaf = st[0].function.clone().unwrap_or_default();
        let tag = match leaf.as_str() {
            "leak_even" => "LEAK:even",
            "leak_odd" => "LEAK:odd",
            _ => panic!("unexpected leak:{}", show_leaks(p)),
        };
        assert!(st[0].is(&leaf, &file, line_of("thread_generations.c", tag)), "{}", show_stack(&st));
        let depth = st.iter().skip(1).take_while(|f| f.function.as_deref() == Some("descend")).count();
        assert_eq!(st[1 + depth].function.as_deref(), Some("generation"), "after descend: the thread's start{}", show_stack(&st));
        assert_eq!(leak["class"], "definite", "{}", show_stack(&st));
        let blocks = leak["blocks"].as_u64().unwrap();
        let size = if leaf == "leak_odd" { 24 } else { 40 };
        assert_eq!(leak["bytes"].as_u64(), Some(blocks * size), "{}", show_stack(&st));
        *seen.entry((leaf, depth)).or_insert(0u64) += blocks;
    }
    // Generation g leaks 50 blocks through descend(1 + g % 5): 2 + g % 5 frames.
    let mut want = std::collections::BTreeMap::new();
    for g in 0..12u64 {
        let leaf = if g % 2 == 1 { "leak_odd" } else { "leak_even" };
        *want.entry((leaf.to_string(), 2 + (g % 5) as usize)).or_insert(0u64) += 50;
    }
    assert_eq!(seen, want, "blocks per (leaf, descend frames):{}", show_leaks(p));
    assert_no_leak_at_line(p, "thread_generations.c", "FREED:churn");
    assert!(errors(p).is_empty(), "{}", show_leaks(p));
}

#[test]
fn leak_in_a_dlclosed_library_resolves_to_its_source_line() {
    let plugin = cc_shared("plugin.c", &["-g", "-O0"]);
    let exe = cc("dlopen_main.c", &["-g", "-O0", "-ldl"]);
    let o = run_ok(&exe, &[plugin.to_str().unwrap()]);
    assert!(o.stdout.contains("plugin unloaded"), "dlclose succeeded: {}", o.describe());
    let p = o.process();
    let leak = leak_at(p, "plugin_leak", "plugin.c", "LEAK:plugin");
    assert_leak(leak, "definite", 123, 1, "malloc");
    let st = frames(&leak["stack"]);
    let so = plugin.canonicalize().unwrap();
    assert_eq!(st[0].module.as_deref(), so.to_str(), "frame #0 is in the unloaded plugin:{}", show_stack(&st));
    assert_eq!(st[1].function.as_deref(), Some("plugin_entry"), "{}", show_stack(&st));
    let main = line_of("dlopen_main.c", "CALL:plugin_entry");
    assert!(st[2].is("main", &fixture_file("dlopen_main.c"), main), "then main:{}", show_stack(&st));
    assert_eq!(leaks(p).len(), 1, "dlopen's own bookkeeping is not a leak:{}", show_leaks(p));
}

#[test]
fn frame_in_a_library_without_debug_info_has_module_but_no_file() {
    let lib = cc_shared("nodebug_lib.c", &["-O0"]);
    let dir = lib.parent().unwrap().to_str().unwrap().to_owned();
    let name = lib.file_name().unwrap().to_str().unwrap().to_owned();
    let link = format!("-l:{name}");
    let exe = cc("nodebug_main.c", &["-g", "-O0", &format!("-L{dir}"), &format!("-Wl,-rpath,{dir}"), &link]);
    let o = run_ok(&exe, &[]);
    let p = o.process();
    let file = fixture_file("nodebug_main.c");
    let leak = leak_with_frame(p, "main", &file, line_of("nodebug_main.c", "CALL:nodebug_make"));
    assert_leak(leak, "definite", 345, 1, "malloc");
    let st = frames(&leak["stack"]);
    let so = lib.canonicalize().unwrap();
    assert_eq!(st[0].module.as_deref(), so.to_str(), "frame #0 is in the library:{}", show_stack(&st));
    assert_eq!(st[0].file, None, "no debug info, no file:{}", show_stack(&st));
    assert_eq!(st[0].line, None, "no debug info, no line:{}", show_stack(&st));
    assert_eq!(st[0].function.as_deref(), Some("nodebug_make"), "the symbol table still names it:{}", show_stack(&st));
    assert!(st[1].is("main", &file, line_of("nodebug_main.c", "CALL:nodebug_make")), "{}", show_stack(&st));
}

fn call_chain(flags: &[&str]) {
    let exe = cc("callchain.c", flags);
    let o = run_ok(&exe, &[]);
    let p = o.process();
    let leak = leak_at_line(p, "callchain.c", "LEAK:b");
    assert_leak(leak, "reachable", 202, 1, "malloc");
    let st = frames(&leak["stack"]);
    let file = fixture_file("callchain.c");
    // Unwinding: the call sites, innermost first.
    let want_lines: Vec<Option<u32>> =
        ["LEAK:b", "CALL:a", "CALL:main"].iter().map(|t| Some(line_of("callchain.c", t))).collect();
    let got_lines: Vec<Option<u32>> = st.iter().take(3).map(|f| f.line).collect();
    assert_eq!(got_lines, want_lines, "call sites of b, a and main:{}", show_stack(&st));
    assert!(st[..3].iter().all(|f| f.file.as_deref() == Some(file.as_str())), "{}", show_stack(&st));
    assert!(st[..3].iter().all(|f| !f.inlined), "noinline functions are real frames:{}", show_stack(&st));
    // Naming.
    assert_eq!(&functions(&st)[..3], ["b", "a", "main"], "function names:{}", show_stack(&st));
}

#[test]
fn call_chain_at_o0_is_b_a_main() {
    call_chain(&["-g", "-O0"]);
}

#[test]
fn call_chain_at_o2_without_frame_pointers_is_b_a_main() {
    call_chain(&["-g", "-O2", "-fomit-frame-pointer"]);
}

#[test]
fn leak_in_a_dlopened_library_without_frame_pointers_keeps_its_callers() {
    let plugin = cc_shared("plugin.c", &["-g", "-O2", "-fomit-frame-pointer"]);
    let exe = cc("dlopen_main.c", &["-g", "-O0", "-ldl"]);
    let o = run_ok(&exe, &[plugin.to_str().unwrap()]);
    assert!(o.stdout.contains("plugin unloaded"), "dlclose succeeded: {}", o.describe());
    let p = o.process();
    let leak = leak_at(p, "plugin_leak", "plugin.c", "LEAK:plugin");
    assert_leak(leak, "definite", 123, 1, "malloc");
    let st = frames(&leak["stack"]);
    let f = functions(&st);
    assert_eq!(&f[..3], ["plugin_leak", "plugin_entry", "main"], "callers through the plugin:{}", show_stack(&st));
    let main = line_of("dlopen_main.c", "CALL:plugin_entry");
    assert!(
        st.iter().any(|fr| fr.is("main", &fixture_file("dlopen_main.c"), main)),
        "main at its call:{}",
        show_stack(&st)
    );
}
