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
