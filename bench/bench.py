#!/usr/bin/env python3
"""bench.py - leakscope's overhead benchmark against native, heaptrack, Valgrind and LeakSanitizer.

Normally started by bench/run.sh (which builds what is needed first); see bench/README.md.

  bench.py run                      measure (knobs are environment variables, see CONFIG below)
  bench.py render RAW.json [...]    re-make the markdown tables from raw data (several files are
                                    merged: for the same workload and tool the later file wins)

Python 3 standard library only. Every process is started through build/runrec (tools/runrec.c),
which measures wall time, CPU time and peak RSS of the process tree without the harness's own
memory showing up in the child's peak RSS.
"""
import datetime
import glob
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
BUILD = os.path.join(BENCH, "build")
TMP = os.path.join(BUILD, "tmp", str(os.getpid()))   # this run's scratch files (removed at the end)
RUNREC = os.path.join(BUILD, "runrec")
COUNTER = os.path.join(BUILD, "count_allocs.so")
LSAN_SO = "/usr/lib/x86_64-linux-gnu/liblsan.so.0"
PY = "/usr/bin/python3"
PERL = "/usr/bin/perl"


def env_str(name, default):
    v = os.environ.get(name)
    return default if v is None or v == "" else v


QUICK = env_str("QUICK", "0") not in ("0", "no", "false")
CONFIG = {
    "quick": QUICK,
    "n": int(env_str("N", "3" if QUICK else "5")),          # timed pairs per tool (not valgrind)
    "nv": int(env_str("NV", "1" if QUICK else "2")),        # timed pairs for valgrind (smaller input)
    "warmup": int(env_str("WARMUP", "1")),                  # unmeasured runs of each command first
    "only": env_str("ONLY", "").split(),
    "tools": env_str("TOOLS", "leakscope leakscope-rec heaptrack valgrind lsan lsanrb").split(),
    "timeout": float(env_str("TIMEOUT", "600" if QUICK else "1800")),  # per run, seconds
    "ls_mode": env_str("LEAKSCOPE_MODE", "auto"),           # auto | cli | preload
    "ls_bin": env_str("LEAKSCOPE_BIN", os.path.join(ROOT, "target/release/leakscope")),
    "ls_so": env_str("LEAKSCOPE_SO", os.path.join(ROOT, "target/release/libleakscope_preload.so")),
    "ls_args": shlex.split(env_str("LEAKSCOPE_ARGS", "--output /dev/null")),
    "ls_env": env_str("LEAKSCOPE_ENV", ""),                 # extra NAME=VALUE ... for leakscope runs
    "session_root": env_str("SESSION_ROOT", "/dev/shm"),
    "ht_print": env_str("HT_PRINT", "1") != "0",            # time heaptrack_print -l once per workload
    "ls_report": env_str("LS_REPORT", "1") != "0",          # one untimed leakscope run saving trace+report
    "out": env_str("OUT", ""),                              # results stem (default: date[-quick])
    "quiet": float(env_str("QUIET", "0")),                  # >0: before each pair wait until other processes
    "quiet_max": float(env_str("QUIET_MAX", "120")),        #   use < QUIET CPUs (at most QUIET_MAX s)
}

TOOL_LABEL = {
    "leakscope": "leakscope",
    "leakscope-rec": "leakscope-rec",
    "heaptrack": "heaptrack",
    "valgrind": "valgrind",
    "lsan": "lsan-preload",
    "lsanslow": "lsan-preload-slow",
    "lsanrb": "lsan-rebuild",
}
TOOL_ORDER = ["leakscope", "leakscope-rec", "heaptrack", "lsan", "lsanslow", "lsanrb", "valgrind"]
SYNTH = {"churn1", "churn2", "churn4", "manylive", "realloc", "threads"}
ALL_WL = ["py", "perl", "sqlite", "cc1", "churn1", "churn2", "churn4", "manylive", "realloc", "threads"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workloads

def cc1_path():
    try:
        p = subprocess.run(["gcc", "-print-prog-name=cc1"], capture_output=True, text=True).stdout.strip()
        if p and os.path.exists(p):
            return p
    except OSError:
        pass
    return "/usr/lib/gcc/x86_64-linux-gnu/12/cc1"


def workloads(quick):
    """name -> dict(env, argv, vargv (valgrind's smaller input), synth binary)."""
    b, i = BUILD, os.path.join(BENCH, "inputs")
    cc1 = cc1_path()
    # sizes: (full, valgrind full, quick, valgrind quick)
    def pick(full, vfull, q, vq):
        return (q, vq) if quick else (full, vfull)
    W = {}
    n, vn = pick(("40000", "5"), ("40000", "1"), ("10000", "2"), ("5000", "1"))
    W["py"] = dict(env={"PYTHONMALLOC": "malloc"},
                   argv=[PY, f"{i}/py_churn.py", *n], vargv=[PY, f"{i}/py_churn.py", *vn])
    n, vn = pick(("60000", "5"), ("10000", "1"), ("15000", "3"), ("3000", "1"))
    W["perl"] = dict(env={}, argv=[PERL, f"{i}/pl_churn.pl", *n], vargv=[PERL, f"{i}/pl_churn.pl", *vn])
    n, vn = pick(f"{i}/churn.sql", f"{i}/churn.sql", f"{b}/churn-50000.sql", f"{b}/churn-20000.sql")
    W["sqlite"] = dict(env={}, argv=["sqlite3", ":memory:", f".read {n}"], vargv=["sqlite3", ":memory:", f".read {vn}"])
    n, vn = pick(70, 20, 20, 5)
    W["cc1"] = dict(env={}, argv=[cc1, "-quiet", "-O2", f"{b}/big-{n}.c", "-o", "/dev/null"],
                    vargv=[cc1, "-quiet", "-O2", f"{b}/big-{vn}.c", "-o", "/dev/null"])
    n, vn = pick("4000000", "1000000", "1000000", "200000")
    for t in (1, 2, 4):
        W[f"churn{t}"] = dict(env={}, argv=[f"{b}/churn", str(t), n, "64"], vargv=[f"{b}/churn", str(t), vn, "64"],
                              synth="churn")
    n, vn = pick("2000000", "500000", "500000", "100000")
    W["manylive"] = dict(env={}, argv=[f"{b}/manylive", n, "1"], vargv=[f"{b}/manylive", vn, "1"], synth="manylive")
    n, vn = pick("2000000", "500000", "500000", "100000")
    W["realloc"] = dict(env={}, argv=[f"{b}/reallocgrow", "20000", n], vargv=[f"{b}/reallocgrow", "20000", vn],
                        synth="reallocgrow")
    n, vn = pick("20000", "2000", "5000", "500")
    W["threads"] = dict(env={}, argv=[f"{b}/shortthreads", n, "50"], vargv=[f"{b}/shortthreads", vn, "50"],
                        synth="shortthreads")
    return W


def show_cmd(argv, env):
    """Command line as shown in the tables: paths relative to bench/."""
    s = " ".join(shlex.quote(a) for a in argv)
    s = s.replace(BENCH + "/", "")
    return " ".join(f"{k}={v}" for k, v in env.items()) + (" " if env else "") + s


# --------------------------------------------------------------------------- running

def run(argv, env, errfile="/dev/null", timeout=None):
    """One measured run via runrec. Returns dict(wall, cpu, rss_kib, status, timeout)."""
    cmd = [RUNREC, "-t", str(timeout or CONFIG["timeout"]), "-e", errfile]
    for k, v in env.items():
        cmd += ["-E", f"{k}={v}"]
    cmd += ["--"] + list(argv)
    busy0 = busy_seconds()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH)
    busy1 = busy_seconds()
    kv = dict(x.split("=", 1) for x in p.stdout.split() if "=" in x)
    if "wall" not in kv:
        raise RuntimeError(f"runrec failed: {p.stderr.strip()} ({shlex.join(cmd)})")
    r = {"wall": float(kv["wall"]), "cpu": float(kv["user"]) + float(kv["sys"]),
         "rss_kib": int(kv["maxrss_kib"]), "status": kv["status"], "timeout": kv["timeout"] == "1"}
    # CPU the rest of the machine used meanwhile, in CPUs (0 = quiet; nproc = every core busy elsewhere)
    if busy0 is not None and busy1 is not None and r["wall"] > 0:
        r["other_cpus"] = round(max(0.0, busy1 - busy0 - r["cpu"]) / r["wall"], 3)
    return r


CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    """Non-idle CPU time of the whole machine so far (user+nice+system+irq+softirq+steal), seconds."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def wait_quiet():
    """With QUIET set: wait until the rest of the machine uses less than QUIET CPUs (sampled over 1 s).
    Returns the seconds waited."""
    if CONFIG["quiet"] <= 0:
        return 0.0
    t0 = time.monotonic()
    while time.monotonic() - t0 < CONFIG["quiet_max"]:
        b0, c0 = busy_seconds(), time.monotonic()
        time.sleep(1.0)
        b1, c1 = busy_seconds(), time.monotonic()
        if b0 is None or b1 is None or (b1 - b0) / (c1 - c0) < CONFIG["quiet"]:
            break
    return time.monotonic() - t0


def tail(path, n=1500):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def file_bytes(path):
    """(apparent size, allocated bytes) of a file or of all files under a directory."""
    app = alloc = 0
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        app += st.st_size
        alloc += st.st_blocks * 512
    return app, alloc


def leakscope_mode():
    m = CONFIG["ls_mode"]
    if m in ("cli", "preload"):
        return m
    try:
        p = subprocess.run([CONFIG["ls_bin"], "--help"], capture_output=True, text=True, timeout=30)
        if p.returncode == 0 and re.search(r"^\s+run\b", p.stdout, re.M):
            return "cli"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "preload"


def parse_env_words(s):
    d = {}
    for w in shlex.split(s):
        if "=" in w:
            k, v = w.split("=", 1)
            d[k] = v
    return d


class Tool:
    """How to run one workload under one tool: argv, env, and hooks around each run."""

    def __init__(self, key, wl_name, wl, small, ls_mode):
        self.key, self.name, self.wl, self.small, self.ls_mode = key, wl_name, wl, small, ls_mode
        base = wl["vargv"] if small else wl["argv"]
        env = dict(wl["env"])
        self.trace_path = None   # a file or directory whose size is the tool's trace output
        self.trace_kind = None
        self.ok_status = set()
        if key == "native":
            argv = base
        elif key == "leakscope" and ls_mode == "cli":
            argv = [CONFIG["ls_bin"], "run", *CONFIG["ls_args"], "--", *base]
            env.update(parse_env_words(CONFIG["ls_env"]))
            env["LEAKSCOPE_PRELOAD"] = CONFIG["ls_so"]  # the CLI's override: exactly the library measured
        elif key in ("leakscope", "leakscope-rec"):
            self.session = os.path.join(CONFIG["session_root"], f"lsbench-{os.getpid()}-{wl_name}")
            argv = base
            env.update(parse_env_words(CONFIG["ls_env"]))
            env.update({"LEAKSCOPE_SESSION": self.session, "LD_PRELOAD": CONFIG["ls_so"]})
            self.trace_path, self.trace_kind = self.session, "session file (allocated)"
        elif key == "heaptrack":
            out = os.path.join(TMP, "heaptrack", wl_name)
            argv = ["heaptrack", "-o", out, *base]
            self.ht_out = out
            self.trace_path, self.trace_kind = out + ".zst", ".zst"
        elif key == "valgrind":
            argv = ["valgrind", "--leak-check=full", "--log-file=/dev/null", *base]
        elif key in ("lsan", "lsanslow"):
            argv = base
            env["LD_PRELOAD"] = LSAN_SO
            if key == "lsanslow":
                env["LSAN_OPTIONS"] = "fast_unwind_on_malloc=0"
            self.ok_status = {"exit:23"}  # LSan's exit code when it found leaks
        elif key == "lsanrb":
            argv = [os.path.join(BUILD, wl["synth"] + ".lsan"), *base[1:]] if "synth" in wl else base
            self.ok_status = {"exit:23"}
        else:
            raise ValueError(key)
        self.argv, self.env = argv, env

    def applicable(self):
        return self.key != "lsanrb" or "synth" in self.wl

    def pre(self):
        if self.key in ("leakscope", "leakscope-rec") and self.ls_mode_eff() == "preload":
            shutil.rmtree(self.session, ignore_errors=True)
            os.makedirs(self.session)
        if self.key == "heaptrack":
            os.makedirs(os.path.dirname(self.ht_out), exist_ok=True)
            for suf in (".zst", ".gz", ".raw.zst", ".raw.gz"):
                try:
                    os.remove(self.ht_out + suf)
                except OSError:
                    pass

    def ls_mode_eff(self):
        return "preload" if self.key == "leakscope-rec" else self.ls_mode

    def post(self, r):
        if self.trace_path:
            if self.key == "heaptrack" and not os.path.exists(self.trace_path) and os.path.exists(self.ht_out + ".gz"):
                self.trace_path, self.trace_kind = self.ht_out + ".gz", ".gz"
            app, alloc = file_bytes(self.trace_path)
            r["trace_bytes"] = alloc if os.path.isdir(self.trace_path) else app
        if self.key in ("leakscope", "leakscope-rec") and self.ls_mode_eff() == "preload":
            shutil.rmtree(self.session, ignore_errors=True)

    def run(self, errfile):
        self.pre()
        r = run(self.argv, self.env, errfile)
        self.post(r)
        return r


def status_ok(r, tool, ref):
    return not r["timeout"] and (r["status"] == ref or r["status"] in tool.ok_status)


def describe_fail(r, errfile):
    what = "timeout" if r["timeout"] else r["status"].replace("signal:11", "SIGSEGV").replace("signal:6", "SIGABRT")
    return {"what": what, "stderr_tail": tail(errfile, 800)}


# --------------------------------------------------------------------------- phases

def count_calls(argv, env):
    out = os.path.join(TMP, "counts.txt")
    try:
        os.remove(out)
    except OSError:
        pass
    e = dict(env)
    e.update({"LD_PRELOAD": COUNTER, "COUNT_ALLOCS_OUT": out})
    r = run(argv, e)
    tot, detail = 0, {}
    try:
        lines = open(out).read().split("\n")
    except OSError:
        lines = []
    for ln in lines:
        kv = dict(x.split("=", 1) for x in ln.split() if "=" in x)
        for k, v in kv.items():
            if k != "pid":
                detail[k] = detail.get(k, 0) + int(v)
    tot = detail.get("allocs")
    return {"allocs": tot, "detail": detail, "processes": len([x for x in lines if x]), "status": r["status"]}


def bench_workload(name, wl, ls_mode, raw_wl):
    tools = [t for t in TOOL_ORDER if t in CONFIG["tools"]]
    errdir = os.path.join(TMP, "stderr")
    os.makedirs(errdir, exist_ok=True)
    raw_wl.update({"cmd": show_cmd(wl["argv"], wl["env"]), "vcmd": show_cmd(wl["vargv"], wl["env"]),
                   "loadavg_start": open("/proc/loadavg").read().split()[:3]})
    raw_wl.setdefault("runs", {})

    # allocation calls, counted once by the LD_PRELOAD counter
    c = count_calls(wl["argv"], wl["env"])
    raw_wl["calls"], raw_wl["calls_detail"] = c["allocs"], c
    if "valgrind" in tools:
        cv = c if wl["vargv"] == wl["argv"] else count_calls(wl["vargv"], wl["env"])
        raw_wl["vcalls"] = cv["allocs"]
    log(f"[{name}] allocation calls: {c['allocs']} ({c['processes']} process(es))"
        + (f"; valgrind input: {raw_wl['vcalls']}" if "valgrind" in tools else ""))

    native = Tool("native", name, wl, False, ls_mode)
    nerr = os.path.join(errdir, f"{name}.native.txt")
    ref = native.run(nerr)  # warm-up (always) gives the reference exit status
    for _ in range(CONFIG["warmup"] - 1):
        native.run(nerr)
    raw_wl["native_status"] = ref["status"]
    if ref["status"] != "exit:0" or ref["timeout"]:
        log(f"[{name}] WARNING: native run ended with {ref['status']}:\n{tail(nerr, 400)}")

    active = []
    for key in tools:
        if key == "valgrind":
            continue
        t = Tool(key, name, wl, False, ls_mode)
        if not t.applicable():
            continue
        ent = raw_wl["runs"].setdefault(TOOL_LABEL[key], {"pairs": [], "fails": []})
        ent["cmd"] = show_cmd(t.argv, t.env)
        ent["trace_kind"] = t.trace_kind
        ef = os.path.join(errdir, f"{name}.{key}.txt")
        ok = True
        for _ in range(CONFIG["warmup"]):
            r = t.run(ef)
            if not status_ok(r, t, ref["status"]):
                ent["fails"].append(dict(describe_fail(r, ef), phase="warm-up", run=r))
                log(f"[{name}] {key}: warm-up failed ({ent['fails'][-1]['what']}); not timed")
                ok = False
                break
        if ok:
            active.append((key, t, ent, ef))

    for i in range(CONFIG["n"]):
        if not active:
            break
        k = i % len(active)
        for key, t, ent, ef in active[k:] + active[:k]:
            if len([f for f in ent["fails"] if f.get("phase") == "timed"]) >= 2:
                continue  # failed twice: stop wasting time on it
            waited = wait_quiet()
            a = t.run(ef)
            b = native.run(nerr)
            if waited > 0.5:
                a["waited_for_quiet"] = round(waited, 1)
            if not status_ok(a, t, ref["status"]):
                ent["fails"].append(dict(describe_fail(a, ef), phase="timed", run=a))
                log(f"[{name}] {key}: run failed ({ent['fails'][-1]['what']})")
                continue
            ent["pairs"].append([a, b])
            log(f"[{name}] pair {i + 1}/{CONFIG['n']} {key:<13} {a['wall']:8.3f}s  native {b['wall']:7.3f}s"
                f"  x{a['wall'] / b['wall']:6.2f}  rss {a['rss_kib'] / 1024:7.1f}/{b['rss_kib'] / 1024:.1f} MiB")

    if "valgrind" in tools and CONFIG["nv"] > 0:
        t = Tool("valgrind", name, wl, True, ls_mode)
        nat = Tool("native", name, wl, True, ls_mode)
        ent = raw_wl["runs"].setdefault("valgrind", {"pairs": [], "fails": []})
        ent["cmd"], ent["small"], ent["trace_kind"] = show_cmd(t.argv, t.env), True, None
        ef = os.path.join(errdir, f"{name}.valgrind.txt")
        vref = nat.run(nerr)  # warm-up of the small native run only
        for i in range(CONFIG["nv"]):
            wait_quiet()
            a = t.run(ef)
            b = nat.run(nerr)
            if not status_ok(a, t, vref["status"]):
                ent["fails"].append(dict(describe_fail(a, ef), phase="timed", run=a))
                log(f"[{name}] valgrind: run failed ({ent['fails'][-1]['what']})")
                break
            ent["pairs"].append([a, b])
            log(f"[{name}] pair {i + 1}/{CONFIG['nv']} valgrind      {a['wall']:8.3f}s  native {b['wall']:7.3f}s"
                f"  x{a['wall'] / b['wall']:6.2f}  (smaller input)")

    # heaptrack_print -l on the last recording: the time it takes to get heaptrack's leak list
    if "heaptrack" in tools and CONFIG["ht_print"]:
        ht = Tool("heaptrack", name, wl, False, ls_mode)
        if os.path.exists(ht.trace_path) and raw_wl["runs"].get("heaptrack", {}).get("pairs"):
            r = run(["heaptrack_print", "-l", "1", "-f", ht.trace_path], {})
            raw_wl["heaptrack_print"] = r
            log(f"[{name}] heaptrack_print -l: {r['wall']:.3f}s")

    # one untimed leakscope run that keeps its trace and report
    if "leakscope" in tools and CONFIG["ls_report"] and ls_mode == "cli":
        raw_wl["leakscope_report"] = leakscope_report_run(name, wl)

    raw_wl["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    left = sorted(set(glob.glob("/dev/shm/leakscope-*")) - SHM_BEFORE)
    if left:
        raw_wl["leftover_sessions"] = left
        log(f"[{name}] WARNING: new /dev/shm/leakscope-* directories (left by leakscope, or made by another user meanwhile): {' '.join(left)}")


def leakscope_report_run(name, wl):
    rdir = os.path.join(RESULT_DIR, "reports")
    os.makedirs(rdir, exist_ok=True)
    txt = os.path.join(rdir, f"{name}.leakscope.txt")
    js = os.path.join(rdir, f"{name}.leakscope.json")
    trace = os.path.join(TMP, f"{name}.lstrace")
    ef = os.path.join(TMP, "stderr", f"{name}.leakscope-report.txt")
    for p in (txt, js, trace):
        try:
            os.remove(p)
        except OSError:
            pass
    argv = [CONFIG["ls_bin"], "run", "--output", txt, "--json", js, "--save-trace", trace, "--", *wl["argv"]]
    env = dict(wl["env"])
    env.update(parse_env_words(CONFIG["ls_env"]))
    env["LEAKSCOPE_PRELOAD"] = CONFIG["ls_so"]
    r = run(argv, env, ef)
    out = {"cmd": show_cmd(argv, env), "run": r, "trace_bytes": file_bytes(trace)[0] if os.path.exists(trace) else None}
    text = ""
    try:
        text = open(txt, errors="replace").read()
    except OSError:
        out["stderr_tail"] = tail(ef, 800)
    out["report_bytes"] = len(text)
    out["json_bytes"] = file_bytes(js)[0] if os.path.exists(js) else None
    try:
        out["summary"] = json.load(open(js)).get("summary")
    except (OSError, ValueError, AttributeError):
        out["summary"] = None
    if "synth" in wl:
        out["site_found"] = "common.h:27" in text
    # keep the reports small in the repo
    if len(text) > 65536:
        with open(txt, "w") as f:
            f.write(text[:65536] + f"\n[... truncated by bench.py: {len(text)} bytes in all]\n")
    if out["json_bytes"] and out["json_bytes"] > 262144:
        os.remove(js)
        out["json_removed"] = True
    try:
        os.remove(trace)
    except OSError:
        pass
    log(f"[{name}] leakscope report run: {r['status']} trace {out['trace_bytes']} B report {len(text)} B"
        + (f" site common.h:27 {'found' if out.get('site_found') else 'NOT found'}" if "synth" in wl else ""))
    return out


# --------------------------------------------------------------------------- metadata

def sh(cmd):
    try:
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60)
        return (p.stdout + p.stderr).strip()
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


def sha12(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:12]
    except OSError:
        return None


def metadata(ls_mode):
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
    dirty = sh(f"git -C {shlex.quote(ROOT)} status --porcelain -- crates Cargo.toml Cargo.lock")
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": {"cpu": cpu.group(1) if cpu else "?", "nproc": os.cpu_count(),
                 "mem_gib": round(int(mem.group(1)) / 1048576, 1) if mem else None,
                 "kernel": platform.release(), "glibc": os.confstr("CS_GNU_LIBC_VERSION")},
        "versions": {
            "heaptrack": sh("heaptrack --version"), "valgrind": sh("valgrind --version"),
            "gcc": sh("gcc -dumpfullversion"), "sqlite3": sh("sqlite3 --version").split(" ")[0],
            "python3": sh(f"{PY} --version"), "perl": sh(f"{PERL} -e 'print $^V'"), "liblsan": sh("dpkg-query -W -f='${Version}' liblsan0"),
        },
        "leakscope": {"mode": ls_mode, "commit": sh(f"git -C {shlex.quote(ROOT)} rev-parse --short HEAD"),
                      "uncommitted_changes": bool(dirty.strip()), "bin": CONFIG.get("ls_bin_orig", CONFIG["ls_bin"]),
                      "bin_sha256_12": sha12(CONFIG["ls_bin"]) if ls_mode == "cli" else None,
                      "so": CONFIG.get("ls_so_orig", CONFIG["ls_so"]), "so_sha256_12": sha12(CONFIG["ls_so"]),
                      "args": CONFIG["ls_args"], "env": CONFIG["ls_env"]},
        "config": {k: v for k, v in CONFIG.items()},
    }


# --------------------------------------------------------------------------- tables

def med(xs):
    return statistics.median(xs) if xs else None


def stats(ent, calls):
    pairs = ent.get("pairs") or []
    if not pairs:
        return None
    A = [p[0] for p in pairs]
    B = [p[1] for p in pairs]
    ratios = [a["wall"] / b["wall"] for a, b in pairs]
    s = {
        "n": len(pairs),
        "a_wall": med([a["wall"] for a in A]), "b_wall": med([b["wall"] for b in B]),
        "ratio": med(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "cpu_ratio": med([a["cpu"] / max(b["cpu"], 1e-6) for a, b in pairs]),
        "a_rss": med([a["rss_kib"] for a in A]) / 1024, "b_rss": med([b["rss_kib"] for b in B]) / 1024,
    }
    s["rss_ratio"] = s["a_rss"] / s["b_rss"]
    s["ns"] = (s["a_wall"] - s["b_wall"]) / calls * 1e9 if calls else None
    tb = [a["trace_bytes"] for a in A if a.get("trace_bytes") is not None]
    s["trace_bytes"] = med(tb)
    return s


def fmt3(x):
    return "-" if x is None else f"{x:.3f}"


def fmt0(x):
    return "-" if x is None else f"{x:.0f}"


def human_bytes(n):
    if n is None:
        return "-"
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def cell(ent, s, fmt, small):
    if s is None:
        if ent and ent.get("fails"):
            return ent["fails"][0]["what"]
        return "-"
    v = fmt(s)
    if v is None:
        return "-"
    mark = "*" if small else ""
    nfail = len([f for f in ent.get("fails", []) if f.get("phase") == "timed"])
    return v + mark + (f" ({nfail} failed)" if nfail else "")


def render(raw):
    meta, wls = raw["meta"], raw["workloads"]
    names = [w for w in ALL_WL if w in wls] + [w for w in wls if w not in ALL_WL]
    labels = [TOOL_LABEL[t] for t in TOOL_ORDER if any(TOOL_LABEL[t] in wls[w].get("runs", {}) for w in names)]
    cfg = meta["config"]
    ls = meta["leakscope"]
    o = []
    o.append(f"# leakscope benchmark, {meta['date'][:10]}{' (QUICK: smaller inputs)' if cfg['quick'] else ''}\n")
    h = meta["host"]
    o.append(f"- machine: {h['cpu']}, {h['nproc']} CPUs, {h['mem_gib']} GiB, kernel {h['kernel']}, {h['glibc']}")
    v = meta["versions"]
    o.append(f"- tools: {v['heaptrack']}, {v['valgrind']}, liblsan0 {v['liblsan']} (gcc {v['gcc']}), "
             f"sqlite3 {v['sqlite3']}, {v['python3']}, perl {v.get('perl', '?')}")
    how = (f"`leakscope run {' '.join(ls['args'])} -- CMD` (CLI: record + read + symbolise + report)"
           if ls["mode"] == "cli" else
           "preload only: `LEAKSCOPE_SESSION=DIR LD_PRELOAD=libleakscope_preload.so CMD` (recording, no report)")
    o.append(f"- leakscope {ls['commit']}{' + uncommitted changes' if ls['uncommitted_changes'] else ''}"
             f" (preload sha256 {ls['so_sha256_12']}), run as {how}"
             + (f", extra env `{ls['env']}`" if ls.get("env") else ""))
    if "leakscope-rec" in labels:
        o.append("- leakscope-rec = the preload library alone, `LEAKSCOPE_SESSION=DIR LD_PRELOAD=libleakscope_preload.so CMD`"
                 " (recording only: no reading, symbolising or report; the session directory is made before and "
                 "removed after each run, outside the timing)")
    o.append(f"- method: each tool run (A) paired with a native run (B) straight after it, A B A B ..., tools "
             f"interleaved within a round; {cfg['warmup']} unmeasured warm-up run(s) of each; "
             f"{cfg['n']} pairs per tool, valgrind {cfg['nv']} pair(s) on a smaller input (`*`) against native at "
             f"that size. Timed with `build/runrec` (fork/exec/wait4): whole-process wall, CPU = user+sys of the "
             f"process tree, peak RSS = largest single process of the tree.")
    if raw.get("sources"):
        o.append("- merged from " + "; ".join(raw["sources"]) + " (the header lines above are the first file's; "
                 "later files win per workload and tool)")
    else:
        o.append(f"- ran from {meta['date']}" + (f" to {raw.get('end', '?')}" if raw.get("end") else ""))
    o.append("")

    o.append("## Workloads\n")
    o.append("| workload | command (paths relative to bench/) | alloc calls | leakscope's count | native wall s "
             "| M calls/s | native peak MiB | valgrind input | alloc calls (valgrind input) |")
    o.append("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for w in names:
        d = wls[w]
        bw = [p[1]["wall"] for e in d.get("runs", {}).values() if not e.get("small") for p in e.get("pairs", [])]
        br = [p[1]["rss_kib"] for e in d.get("runs", {}).values() if not e.get("small") for p in e.get("pairs", [])]
        nw, nr, calls = med(bw), med(br), d.get("calls")
        vc = d.get("vcmd") if d.get("vcmd") != d.get("cmd") else "same"
        lsc = ((d.get("leakscope_report") or {}).get("summary") or {}).get("allocations", "-")
        o.append(f"| {w} | `{d.get('cmd')}` | {calls or '?'} | {lsc} | {f'{nw:.3f}' if nw else '-'} | "
                 f"{f'{calls / nw / 1e6:.2f}' if calls and nw else '-'} | {f'{nr / 1024:.1f}' if nr else '-'} | "
                 f"{('`' + vc + '`') if vc != 'same' else 'same'} | {d.get('vcalls') or '-'} |")
    o.append("")
    o.append("alloc calls = calls to malloc, calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign, "
             "valloc, pvalloc (not free), counted once per workload by `build/count_allocs.so` (tools/count_allocs.c, "
             "an LD_PRELOAD counter); leakscope's count = `summary.allocations` of its JSON report (one run), a cross-check; native figures are the medians of all native runs paired with the tools.\n")

    def table(title, fmt, note=""):
        o.append(f"## {title}\n")
        if note:
            o.append(note + "\n")
        o.append("| workload | " + " | ".join(labels) + " |")
        o.append("|---|" + "---:|" * len(labels))
        for w in names:
            d = wls[w]
            cells = []
            for lab in labels:
                ent = d.get("runs", {}).get(lab)
                small = bool(ent and ent.get("small"))
                calls = d.get("vcalls") if small else d.get("calls")
                s = stats(ent, calls) if ent else None
                cells.append(cell(ent, s, fmt, small) if ent else "-")
            o.append(f"| {w} | " + " | ".join(cells) + " |")
        o.append("")

    table("Wall-time ratio tool/native (median of per-pair ratios)", lambda s: f"{s['ratio']:.2f}",
          "`*` = valgrind on its smaller input. A failure (crash, timeout, unexpected exit status) is named instead of a figure.")
    table("Added wall time per allocation call, ns", lambda s: f"{s['ns']:.0f}" if s["ns"] is not None else None,
          "(median tool wall - median paired native wall) / alloc calls; includes start-up and exit-time work "
          "(for leakscope in CLI mode: reading the session, symbolising, writing the report). For valgrind it is "
          "not a per-call cost (it translates all code).")
    table("Peak RSS ratio tool/native (median peaks)", lambda s: f"{s['rss_ratio']:.2f}")
    table("CPU time ratio tool/native (user+sys, median of per-pair ratios)", lambda s: f"{s['cpu_ratio']:.2f}",
          "Above the wall ratio when a tool works on another core too (heaptrack_interpret).")

    o.append("## Trace files\n")
    o.append("leakscope: `--save-trace` file (.lstrace) from one extra untimed CLI run per workload"
             " (or, when run preload-only, the allocated size of the session file under /dev/shm); "
             "heaptrack: the .zst recording of the timed runs (median), and the wall time of one "
             "`heaptrack_print -l 1` on it (heaptrack's leak report is a separate step; leakscope's timed runs "
             "include making the report). Valgrind and LeakSanitizer write no trace.\n")
    o.append("| workload | leakscope .lstrace | leakscope session file | leakscope report (text) | leakscope reported "
             "| synthetic leak site common.h:27 in report | heaptrack .zst | heaptrack_print -l s |")
    o.append("|---|---:|---:|---:|---|---|---:|---:|")
    for w in names:
        d = wls[w]
        lr = d.get("leakscope_report") or {}
        sess = None
        for lab in ("leakscope", "leakscope-rec"):
            e = d.get("runs", {}).get(lab)
            if e and e.get("trace_kind") and e.get("pairs"):
                sess = stats(e, d.get("calls"))["trace_bytes"]
                break
        he = d.get("runs", {}).get("heaptrack")
        hs = stats(he, d.get("calls")) if he else None
        hp = d.get("heaptrack_print")
        site = "-" if "site_found" not in lr else ("yes" if lr["site_found"] else "**no**")
        sm = lr.get("summary") or {}
        rep = (f"{sm.get('leaked_bytes')} B in {sm.get('leaked_blocks')} blocks, {sm.get('errors')} errors"
               if sm else ("-" if not lr else f"no JSON ({lr['run']['status']})"))
        o.append(f"| {w} | {human_bytes(lr.get('trace_bytes'))} | {human_bytes(sess)} | "
                 f"{human_bytes(lr.get('report_bytes')) if lr else '-'} | {rep} | {site} | "
                 f"{human_bytes(hs['trace_bytes']) if hs else '-'} | {fmt3(hp['wall']) if hp else '-'} |")
    o.append("")

    # leakscope in detail
    for lab in ("leakscope", "leakscope-rec"):
        if lab not in labels:
            continue
        o.append(f"## {lab} in detail\n")
        o.append("| workload | pairs | wall s (median) | native s | ratio median (min-max) | CPU ratio | "
                 "peak MiB / native | ns per call | failures |")
        o.append("|---|---:|---:|---:|---|---:|---|---:|---|")
        for w in names:
            d = wls[w]
            e = d.get("runs", {}).get(lab)
            if not e:
                continue
            s = stats(e, d.get("calls"))
            fails = "; ".join(f"{f['phase']}: {f['what']}" for f in e.get("fails", [])) or ""
            if not s:
                o.append(f"| {w} | 0 | - | - | - | - | - | - | {fails} |")
                continue
            o.append(f"| {w} | {s['n']} | {s['a_wall']:.3f} | {s['b_wall']:.3f} | {s['ratio']:.2f} "
                     f"({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | {s['cpu_ratio']:.2f} | "
                     f"{s['a_rss']:.1f} / {s['b_rss']:.1f} | {fmt0(s['ns'])} | {fails} |")
        o.append("")

    fails = []
    for w in names:
        for lab, e in wls[w].get("runs", {}).items():
            for f in e.get("fails", []):
                t = " ".join(f.get("stderr_tail", "").split())[-300:]
                fails.append(f"- {w} / {lab} ({f['phase']}): {f['what']}" + (f"; stderr ends: `{t}`" if t else ""))
        if wls[w].get("leftover_sessions"):
            fails.append(f"- {w}: new /dev/shm/leakscope-* directories after this workload (left by leakscope, or made by another user meanwhile): {' '.join(wls[w]['leftover_sessions'])}")
        lr = wls[w].get("leakscope_report")
        if lr and lr["run"]["status"] != wls[w].get("native_status", "exit:0"):
            fails.append(f"- {w} / leakscope report run: {lr['run']['status']}")
    o.append("## Failures\n")
    o.append("\n".join(fails) if fails else "none")
    o.append("")
    o.append("## Other activity on the machine\n")
    o.append(f"CPU time used by other processes while a timed run was going on, in CPUs (0 = quiet, "
             f"{h['nproc']} = every core busy elsewhere): the machine-wide non-idle time from /proc/stat over the run "
             f"minus the run's own CPU time, divided by its wall time (10 ms resolution). Runs with other activity "
             f"are slower and noisier, and multi-threaded ones most."
             + (f" QUIET={cfg['quiet']}: each pair waited (at most {cfg['quiet_max']:.0f} s) until other processes "
                f"used less than {cfg['quiet']} CPUs." if cfg.get("quiet") else "") + "\n")
    o.append("| workload | median | max | runs with > 0.2 CPUs elsewhere | load average at start -> end |")
    o.append("|---|---:|---:|---:|---|")
    for w in names:
        d = wls[w]
        xs = [x.get("other_cpus") for e in d.get("runs", {}).values() for p in e.get("pairs", []) for x in p]
        xs = [x for x in xs if x is not None]
        la = f"{' '.join(d.get('loadavg_start') or [])} -> {' '.join(d.get('loadavg_end') or [])}"
        if xs:
            o.append(f"| {w} | {med(xs):.2f} | {max(xs):.2f} | {len([x for x in xs if x > 0.2])} of {len(xs)} | {la} |")
        else:
            o.append(f"| {w} | - | - | - | {la} |")
    o.append("")
    return "\n".join(o)


# --------------------------------------------------------------------------- main

RESULT_DIR = None
SHM_BEFORE = set(glob.glob("/dev/shm/leakscope-*"))


def result_stem():
    if CONFIG["out"]:
        return CONFIG["out"]
    base = datetime.date.today().isoformat() + ("-quick" if QUICK else "")
    stem, k = base, 2
    while os.path.exists(os.path.join(BENCH, "results", stem + ".md")) or \
            os.path.exists(os.path.join(BENCH, "results", stem)):
        stem, k = f"{base}-{k}", k + 1
    return stem


def snapshot_leakscope(ls_mode):
    """Run leakscope from copies taken now, so a rebuild of target/release during the run (by cargo in
    another shell) cannot change what is measured half-way."""
    snap = os.path.join(TMP, "leakscope")
    os.makedirs(snap, exist_ok=True)
    CONFIG["ls_bin_orig"], CONFIG["ls_so_orig"] = CONFIG["ls_bin"], CONFIG["ls_so"]
    so = os.path.join(snap, "libleakscope_preload.so")
    shutil.copy2(CONFIG["ls_so"], so)
    CONFIG["ls_so"] = so
    if ls_mode == "cli":
        exe = os.path.join(snap, "leakscope")
        shutil.copy2(CONFIG["ls_bin"], exe)
        CONFIG["ls_bin"] = exe


def main_run():
    global RESULT_DIR
    for p in (RUNREC, COUNTER):
        if not os.path.exists(p):
            sys.exit(f"missing {p}: start the benchmark with bench/run.sh")
    ls_mode = leakscope_mode()
    if any(t.startswith("leakscope") for t in CONFIG["tools"]):
        if not os.path.exists(CONFIG["ls_so"]):
            sys.exit(f"missing {CONFIG['ls_so']}: cargo build --release -p leakscope-preload")
        log(f"leakscope mode: {ls_mode}")
        if ls_mode == "preload" and "leakscope" in CONFIG["tools"] and "leakscope-rec" in CONFIG["tools"]:
            CONFIG["tools"].remove("leakscope-rec")
            log("leakscope runs preload-only: leakscope-rec would be the same measurement, dropped")
    if any(t.startswith("leakscope") for t in CONFIG["tools"]):
        snapshot_leakscope(ls_mode)
    stem = result_stem()
    RESULT_DIR = os.path.join(BENCH, "results", stem)
    os.makedirs(RESULT_DIR, exist_ok=True)
    os.makedirs(TMP, exist_ok=True)
    raw = {"meta": metadata(ls_mode), "workloads": {}}
    raw_path = os.path.join(RESULT_DIR, "raw.json")
    md_path = os.path.join(BENCH, "results", stem + ".md")
    W = workloads(QUICK)
    names = [w for w in ALL_WL if not CONFIG["only"] or w in CONFIG["only"]]
    unknown = [w for w in CONFIG["only"] if w not in W]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; known: {' '.join(ALL_WL)}")
    t0 = time.monotonic()
    try:
        run_all(names, W, ls_mode, raw, raw_path, md_path, t0)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


def run_all(names, W, ls_mode, raw, raw_path, md_path, t0):
    for w in names:
        raw["workloads"][w] = {}
        log(f"=== {w}")
        bench_workload(w, W[w], ls_mode, raw["workloads"][w])
        raw["end"] = datetime.datetime.now().isoformat(timespec="seconds")
        with open(raw_path, "w") as f:
            json.dump(raw, f, indent=1)
        with open(md_path, "w") as f:
            f.write(render(raw))
        log(f"=== {w} done ({time.monotonic() - t0:.0f}s so far)")
    md = render(raw)
    with open(md_path, "w") as f:
        f.write(md)
    print(md)
    log(f"results: {os.path.relpath(md_path, ROOT)} (raw data: {os.path.relpath(raw_path, ROOT)}); "
        f"{time.monotonic() - t0:.0f}s")


def main_render(paths):
    merged = None
    sources = []
    for p in paths:
        r = json.load(open(p))
        ls = r["meta"]["leakscope"]
        sources.append(f"`{os.path.relpath(p, BENCH)}` ({', '.join(r['workloads'])}; {r['meta']['date']}, leakscope "
                       f"{ls['commit']}{'+' if ls['uncommitted_changes'] else ''}, preload sha256 {ls['so_sha256_12']})")
        if merged is None:
            merged = r
            continue
        for w, d in r["workloads"].items():
            m = merged["workloads"].setdefault(w, d)
            if m is d:
                continue
            for k, v in d.items():
                if k == "runs":
                    m.setdefault("runs", {}).update(v)
                else:
                    m[k] = v
    if len(paths) > 1:
        merged["sources"] = sources
    print(render(merged))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        main_run()
    elif len(sys.argv) >= 3 and sys.argv[1] == "render":
        main_render(sys.argv[2:])
    else:
        sys.exit(__doc__)
