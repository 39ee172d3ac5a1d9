//! SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), for code
//! scanning tools (GitHub code scanning, IDE viewers, sarif-tools).
//!
//! One run; one result per leak record (every class but `reachable`) and per
//! heap error. A result is located at the allocation site in the user's own
//! code (the innermost frame with a source file outside system directories,
//! [`crate::common::site`]), carries the leak's fingerprint as a partial
//! fingerprint, and its stacks as code flows (outermost frame first). Paths
//! under `srcroot` are given relative to it with `uriBaseId` `SRCROOT`, others
//! as absolute `file://` URIs.

use crate::common::{class_name, error_kind_name, error_stacks, error_title, function_label, is_leaked, plural, site};
use leakscope_analyse::fingerprint;
use leakscope_analyse::report::{Frame, Report};
use serde_json::{json, Map, Value};
use std::path::Path;

pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// (id, name, short description, level) of each rule.
const RULES: &[(&str, &str, &str, &str)] = &[
    ("memory-leak", "MemoryLeak", "Heap memory still allocated when the process ended", "warning"),
    ("double-free", "DoubleFree", "A heap block was released twice", "error"),
    (
        "invalid-free",
        "InvalidFree",
        "A release function was given an address that is not the start of a heap block",
        "error",
    ),
    (
        "mismatched-free",
        "MismatchedFree",
        "A heap block was released with a function that does not match its allocator",
        "error",
    ),
];

fn rule_index(id: &str) -> usize {
    RULES.iter().position(|r| r.0 == id).unwrap_or(0)
}

/// The SARIF log as JSON.
pub fn to_value(report: &Report, srcroot: Option<&Path>) -> Value {
    let root = srcroot.map(|p| {
        let mut s = p.to_string_lossy().into_owned();
        if !s.ends_with('/') {
            s.push('/');
        }
        s
    });
    let uri = |file: &str| -> (String, Option<&'static str>) {
        if let Some(r) = &root {
            if let Some(rel) = file.strip_prefix(r.as_str()) {
                return (percent_encode(rel), Some("SRCROOT"));
            }
        }
        if file.starts_with('/') {
            (format!("file://{}", percent_encode(file)), None)
        } else {
            (percent_encode(file), None)
        }
    };
    let physical = |f: &Frame| -> Option<Value> {
        let file = f.file.as_deref()?;
        let (u, base) = uri(file);
        let mut art = Map::new();
        art.insert("uri".into(), u.into());
        if let Some(b) = base {
            art.insert("uriBaseId".into(), b.into());
        }
        let mut loc = Map::new();
        loc.insert("artifactLocation".into(), Value::Object(art));
        if let Some(line) = f.line.filter(|&l| l > 0) {
            loc.insert("region".into(), json!({"startLine": line}));
        }
        Some(Value::Object(loc))
    };
    let location = |f: &Frame, message: Option<String>| -> Value {
        let mut loc = Map::new();
        if let Some(p) = physical(f) {
            loc.insert("physicalLocation".into(), p);
        }
        let mut logical = Map::new();
        logical.insert("fullyQualifiedName".into(), function_label(f).into());
        logical.insert("kind".into(), "function".into());
        loc.insert("logicalLocations".into(), json!([logical]));
        if let Some(m) = message {
            loc.insert("message".into(), json!({ "text": m }));
        }
        Value::Object(loc)
    };
    let thread_flow = |label: &str, stack: &[Frame]| -> Value {
        let locations: Vec<Value> = stack
            .iter()
            .rev()
            .enumerate()
            .map(|(depth, f)| {
                let text = format!(
                    "{}{}{}",
                    function_label(f),
                    if f.inlined { " [inlined]" } else { "" },
                    match (&f.module, f.module_offset) {
                        (Some(m), Some(off)) => format!(" ({}+{off:#x})", crate::common::base_name(m)),
                        _ => String::new(),
                    }
                );
                json!({"location": location(f, Some(text)), "nestingLevel": depth})
            })
            .collect();
        json!({"message": {"text": label}, "locations": locations})
    };
    let code_flows = |flows: Vec<(String, &[Frame])>| -> Value {
        let thread_flows: Vec<Value> =
            flows.iter().filter(|(_, s)| !s.is_empty()).map(|(label, s)| thread_flow(label, s)).collect();
        if thread_flows.is_empty() {
            json!([])
        } else {
            json!([{ "threadFlows": thread_flows }])
        }
    };

    let mut results = Vec::new();
    for p in &report.processes {
        let program = crate::common::program_name(p);
        for l in p.leaks.iter().filter(|l| is_leaked(l)) {
            let class = class_name(l);
            let text = format!(
                "Memory leak ({class}): {} in {} allocated with {}, still allocated when {program} (pid {}) ended",
                plural(l.bytes, "byte", "bytes"),
                plural(l.blocks, "block", "blocks"),
                l.allocator.name(),
                p.pid
            );
            let mut r = result_base("memory-leak", &text, site(&l.stack).map(|f| location(f, None)));
            r.insert(
                "partialFingerprints".into(),
                json!({ "leakscope/v1": crate::common::fingerprint(l) }),
            );
            let flows = code_flows(vec![(format!("allocated by {}", l.allocator.name()), &l.stack)]);
            if flows.as_array().is_some_and(|a| !a.is_empty()) {
                r.insert("codeFlows".into(), flows);
            }
            r.insert(
                "properties".into(),
                json!({"bytes": l.bytes, "blocks": l.blocks, "allocator": l.allocator.name(), "class": class,
                       "pid": p.pid, "execIndex": p.exec_index, "program": program}),
            );
            results.push(Value::Object(r));
        }
        for e in &p.errors {
            let kind = error_kind_name(e.kind);
            let text = format!("{} in {program} (pid {})", error_title(e), p.pid);
            let mut r = result_base(kind, &text, site(&e.stack).map(|f| location(f, None)));
            r.insert("partialFingerprints".into(), json!({ "leakscope/v1": fingerprint::of_stack(kind, &e.stack) }));
            let stacks = error_stacks(e);
            let related: Vec<Value> = stacks
                .iter()
                .skip(1)
                .enumerate()
                .filter_map(|(i, (label, s))| {
                    let mut v = location(site(s)?, Some(label.clone()));
                    v.as_object_mut()?.insert("id".into(), json!(i + 1));
                    Some(v)
                })
                .collect();
            if !related.is_empty() {
                r.insert("relatedLocations".into(), Value::Array(related));
            }
            let flows = code_flows(stacks);
            if flows.as_array().is_some_and(|a| !a.is_empty()) {
                r.insert("codeFlows".into(), flows);
            }
            r.insert("properties".into(), json!({"address": format!("{:#x}", e.address), "pid": p.pid, "execIndex": p.exec_index, "program": program}));
            results.push(Value::Object(r));
        }
    }

    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, name, desc, level)| {
            json!({"id": id, "name": name, "shortDescription": {"text": desc},
                   "defaultConfiguration": {"level": level}})
        })
        .collect();
    let mut run = json!({
        "tool": {"driver": {
            "name": "leakscope",
            "version": report.tool.version,
            "semanticVersion": report.tool.version,
            "rules": rules,
        }},
        "results": results,
        "columnKind": "unicodeCodePoints",
    });
    let invocations: Vec<Value> = report
        .processes
        .iter()
        .filter(|p| p.exec_index == 0 && report.processes.iter().all(|q| q.pid != p.parent_pid))
        .map(|p| {
            let mut inv = json!({"executionSuccessful": true, "commandLine": crate::common::command_line(p)});
            if let leakscope_analyse::report::Exit::Code(c) = p.exit {
                inv["exitCode"] = json!(c);
            }
            inv
        })
        .collect();
    if !invocations.is_empty() {
        run["invocations"] = Value::Array(invocations);
    }
    if let Some(r) = &root {
        run["originalUriBaseIds"] = json!({"SRCROOT": {"uri": format!("file://{}", percent_encode(r))}});
    }
    json!({"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]})
}

fn result_base(rule: &str, text: &str, location: Option<Value>) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("ruleId".into(), rule.into());
    r.insert("ruleIndex".into(), rule_index(rule).into());
    r.insert("level".into(), RULES[rule_index(rule)].3.into());
    r.insert("message".into(), json!({ "text": text }));
    if let Some(l) = location {
        r.insert("locations".into(), json!([l]));
    }
    r
}

/// Percent-encodes what may not stand in a URI path.
fn percent_encode(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Writes the SARIF log to `path`.
pub fn write(report: &Report, path: &Path, srcroot: Option<&Path>) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(&to_value(report, srcroot)).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn schema() -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/schemas/sarif-schema-2.1.0.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    pub fn assert_valid(log: &Value) {
        let schema = schema();
        let validator =
            jsonschema::options().should_validate_formats(true).build(&schema).expect("the schema compiles");
        let errors: Vec<String> =
            validator.iter_errors(log).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "SARIF does not validate:\n{}", errors.join("\n"));
    }

    #[test]
    fn the_log_validates_against_the_sarif_2_1_0_schema() {
        let log = to_value(&testdata::report(), Some(Path::new("/src")));
        assert_valid(&log);
        let empty = Report { processes: vec![], ..testdata::report() };
        assert_valid(&to_value(&empty, None));
    }

    #[test]
    fn the_schema_catches_a_broken_log() {
        let mut log = to_value(&testdata::report(), None);
        log["runs"][0]["results"][0]["level"] = json!("catastrophic");
        let schema = schema();
        let validator = jsonschema::options().build(&schema).unwrap();
        assert!(!validator.is_valid(&log));
    }

    #[test]
    fn leaks_are_located_at_the_users_code_with_the_stack_as_a_code_flow() {
        let log = to_value(&testdata::report(), Some(Path::new("/src")));
        let results = log["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 5, "four leak records and one heap error: {results:#?}");
        let strdup = results.iter().find(|r| r["properties"]["bytes"] == 13).unwrap();
        let loc = &strdup["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "leaky.c");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "SRCROOT");
        assert_eq!(loc["region"]["startLine"], 16, "make_record's line, not libc's");
        let flow = &strdup["codeFlows"][0]["threadFlows"][0]["locations"];
        assert_eq!(flow.as_array().unwrap().len(), 3);
        assert_eq!(flow[0]["location"]["logicalLocations"][0]["fullyQualifiedName"], "main");
        assert_eq!(flow[2]["location"]["physicalLocation"]["artifactLocation"]["uri"], "./string/strdup.c");
        assert_eq!(strdup["partialFingerprints"]["leakscope/v1"].as_str().unwrap().len(), 16);
        let double = results.iter().find(|r| r["ruleId"] == "double-free").unwrap();
        assert_eq!(double["level"], "error");
        assert_eq!(double["codeFlows"][0]["threadFlows"].as_array().unwrap().len(), 3);
        assert_eq!(double["relatedLocations"][1]["message"]["text"], "first freed by free");
        let outside = to_value(&testdata::report(), Some(Path::new("/elsewhere")));
        assert_eq!(
            outside["runs"][0]["results"][1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "file:///src/leaky.c"
        );
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(percent_encode("/a b/c#d%e/ü.c"), "/a%20b/c%23d%25e/%C3%BC.c");
    }
}
