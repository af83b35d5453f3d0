//! `docs/editors.md` against the real `tcprelay-cc`: the JSON format follows
//! `docs/diagnostic.schema.json` and the field table, the problem matcher and the
//! editor snippets read the short format, and the outputs shown are what the program
//! prints.

use crate::harness::{self, cc, stdout};
use serde_json::Value;
use std::path::Path;

fn doc() -> String {
    std::fs::read_to_string(harness::root().join("docs/editors.md")).expect("docs/editors.md")
}

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(harness::root().join(path)).expect(path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fenced blocks of `markdown` in `language`, each as its text.
fn fenced<'a>(markdown: &'a str, language: &str) -> Vec<&'a str> {
    let fence = format!("```{language}\n");
    markdown
        .split(&fence)
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .collect()
}

/// Every case of the golden tests, run with `format` in a directory with test
/// certificates: (case name, output).
fn every_case(format: &str) -> Vec<(String, String)> {
    let work = tempfile::tempdir().expect("temp dir");
    harness::make_certs(&work.path().join("certs"));
    let mut out = Vec::new();
    for kind in ["pass", "fail"] {
        let dir = harness::root().join("tests/ui").join(kind);
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .expect("tests/ui")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
            .collect();
        cases.sort();
        for case in cases {
            let name = case.file_name().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(&case).expect("case");
            std::fs::write(work.path().join(&name), &text).expect("copy");
            let mut args = vec!["check", "--format", format, name.as_str()];
            if let Some(extra) = text.lines().next().and_then(|l| l.strip_prefix("# args:")) {
                args.extend(extra.split_whitespace());
            }
            let output = harness::stable_dates(&stdout(&cc(work.path(), &args)));
            out.push((name.clone(), output));
        }
    }
    out
}

/// Checks `value` against the part of JSON Schema that `docs/diagnostic.schema.json`
/// uses: `oneOf`, `type`, `enum`, `required`, `properties`, `additionalProperties:
/// false`, `items`, `minimum`, `pattern` and local `$ref`s.
fn validate(root: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        return validate(root, &root["$defs"][name], value, at, errors);
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        let failures: Vec<Vec<String>> = choices
            .iter()
            .map(|choice| {
                let mut found = Vec::new();
                validate(root, choice, value, at, &mut found);
                found
            })
            .collect();
        let matched = failures.iter().filter(|f| f.is_empty()).count();
        if matched != 1 {
            errors.push(format!("{at}: matches {matched} of oneOf: {failures:?}"));
        }
    }
    let type_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.contains(&type_of(value)) {
        errors.push(format!("{at}: {} is not {types:?}", type_of(value)));
        return;
    }
    if let Some(choices) = schema["enum"].as_array() {
        if !choices.contains(value) {
            errors.push(format!("{at}: {value} is not one of {choices:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_i64(), value.as_i64()) {
        if n < min {
            errors.push(format!("{at}: {n} < {min}"));
        }
    }
    if let (Some(pattern), Some(s)) = (schema["pattern"].as_str(), value.as_str()) {
        if !regex::Regex::new(pattern).expect("pattern").is_match(s) {
            errors.push(format!("{at}: {s:?} does not match {pattern}"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().expect("a name");
            if !object.contains_key(name) {
                errors.push(format!("{at}: no `{name}`"));
            }
        }
        for (name, field) in object {
            match schema["properties"].get(name) {
                Some(sub) => validate(root, sub, field, &format!("{at}.{name}"), errors),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    errors.push(format!("{at}: `{name}` is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(root, items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

#[test]
fn json_output_follows_the_documented_schema() {
    let schema = read_json("docs/diagnostic.schema.json");
    let mut errors = Vec::new();
    let (mut objects, mut with_labels, mut with_notes, mut with_help) = (0, 0, 0, 0);
    for (case, output) in every_case("json") {
        for line in output.lines() {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {line}"));
            validate(&schema, &schema, &value, &case, &mut errors);
            objects += 1;
            with_labels += usize::from(value["labels"].as_array().is_some_and(|a| !a.is_empty()));
            with_notes += usize::from(value["notes"].as_array().is_some_and(|a| !a.is_empty()));
            with_help += usize::from(value["help"].is_string());
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(objects > 40, "{objects} diagnostics");
    // Every optional part of the schema was exercised.
    assert!(with_labels > 0 && with_notes > 0 && with_help > 0);
}

/// The field table of `docs/editors.md` names exactly the schema's fields.
#[test]
fn the_field_table_matches_the_schema() {
    let schema = read_json("docs/diagnostic.schema.json");
    let mut fields = std::collections::BTreeSet::new();
    // The diagnostic's fields and those of the last line that counts the others.
    let properties = ["diagnostic", "omitted"].into_iter().flat_map(|def| {
        schema["$defs"][def]["properties"]
            .as_object()
            .expect("properties")
    });
    for (name, field) in properties {
        fields.insert(name.clone());
        let target = match field["$ref"].as_str().or(field["items"]["$ref"].as_str()) {
            Some(r) => &schema["$defs"][r.trim_start_matches("#/$defs/")],
            None => continue,
        };
        let prefix = if field["type"] == "array" {
            format!("{name}[]")
        } else {
            name.clone()
        };
        // One level down: `start.line`, `labels[].message` (a label's own `start` is
        // a position, described under `start`).
        for sub in target["properties"].as_object().expect("fields").keys() {
            fields.insert(format!("{prefix}.{sub}"));
        }
    }
    let documented: std::collections::BTreeSet<String> = doc()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            cell.split(',')
                .map(|f| f.trim().trim_matches('`').to_string())
        })
        .collect();
    assert_eq!(documented, fields);
}

#[test]
fn problem_matcher_reads_every_short_line() {
    let matcher = read_json("docs/tcprelay-problem-matcher.json");
    let pattern = &matcher["problemMatcher"][0]["pattern"][0];
    let regexp = pattern["regexp"].as_str().expect("regexp");
    let re = regex::Regex::new(regexp).expect("the regexp compiles");
    let group = |name: &str| pattern[name].as_u64().expect("a group") as usize;
    let json: std::collections::BTreeMap<String, String> = every_case("json").into_iter().collect();
    let mut lines = 0;
    for (case, output) in every_case("short") {
        let objects: Vec<Value> = json[&case]
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(output.lines().count(), objects.len(), "{case}");
        for (line, object) in output.lines().zip(&objects) {
            lines += 1;
            let caps = re
                .captures(line)
                .unwrap_or_else(|| panic!("{case}: the matcher misses {line:?}"));
            let get = |name: &str| caps.get(group(name)).map_or("", |m| m.as_str());
            assert_eq!(get("file"), object["file"], "{line}");
            assert_eq!(get("line"), object["start"]["line"].to_string(), "{line}");
            assert_eq!(
                get("column"),
                object["start"]["column"].to_string(),
                "{line}"
            );
            assert_eq!(get("severity"), object["severity"], "{line}");
            assert_eq!(get("code"), object["code"], "{line}");
            let message = object["message"]
                .as_str()
                .expect("message")
                .replace('\n', " ");
            assert!(get("message").starts_with(&message), "{line}");
        }
    }
    assert!(lines > 40, "{lines} lines");
    // The same expression is shown in the text and in the VS Code task.
    let doc = doc();
    assert!(
        doc.contains(&format!("```text\n{regexp}\n```")),
        "the regexp in the text"
    );
    let task: Value = serde_json::from_str(fenced(&doc, "json")[0]).expect("tasks.json");
    assert_eq!(
        task["tasks"][0]["problemMatcher"]["pattern"]["regexp"].as_str(),
        Some(regexp)
    );
}

/// The `errorformat` of the Vim snippet fills the quickfix list from short output.
#[test]
fn vim_errorformat_reads_short_output() {
    let doc = doc();
    let setting = fenced(&doc, "vim")[0]
        .lines()
        .find_map(|l| l.strip_prefix("setlocal errorformat="))
        .expect("an errorformat line");
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = every_case("short");
    let output: String = cases.iter().map(|(_, o)| o.as_str()).collect();
    std::fs::write(dir.path().join("out.txt"), &output).expect("write");
    let script = format!(
        "set errorformat={setting}\ncgetfile out.txt\nredir! > qf.txt\n\
         for e in getqflist() | echo e.valid e.lnum e.col e.type e.nr | endfor\n\
         redir END\nqa!\n"
    );
    std::fs::write(dir.path().join("t.vim"), script).expect("write");
    let status = std::process::Command::new("vim")
        .args(["-Nu", "NONE", "-i", "NONE", "-es", "-S", "t.vim"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .status()
        .expect("vim runs (Debian's vim package)");
    assert!(status.success());
    let qf = std::fs::read_to_string(dir.path().join("qf.txt")).expect("qf.txt");
    let entries: Vec<&str> = qf.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(entries.len(), output.lines().count(), "{qf}");
    for (entry, line) in entries.iter().zip(output.lines()) {
        let fields: Vec<&str> = entry.split(' ').collect();
        let kind = if line.contains(": error[") { "e" } else { "w" };
        let code = line
            .split("[E")
            .nth(1)
            .and_then(|c| c.get(..4))
            .expect("a code");
        let position: Vec<&str> = line.splitn(4, ':').collect();
        assert_eq!(
            fields,
            [
                "1",
                position[1],
                position[2],
                kind,
                code.trim_start_matches('0')
            ],
            "{line}"
        );
    }
}

/// A file with more diagnostics than are printed: the JSON format ends with the
/// object that counts the others, which follows the schema, and the short format
/// with a line the problem matcher does not take for a problem.
#[test]
fn the_count_of_diagnostics_not_shown_follows_the_schema() {
    let schema = read_json("docs/diagnostic.schema.json");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = String::from("id = spawnd {\n");
    for _ in 0..70 {
        cfg.push_str("  listen = { port = 99999 }\n");
    }
    cfg.push_str("}\nid = tcprelay { remote = { address = 127.0.0.1 port = 1 } }\n");
    std::fs::write(dir.path().join("many.cfg"), cfg).expect("write");
    let out = stdout(&cc(dir.path(), &["check", "--format", "json", "many.cfg"]));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 51, "{out}");
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        validate(
            &schema,
            &schema,
            line,
            &format!("line {}", i + 1),
            &mut errors,
        );
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(lines[..50].iter().all(|l| l["code"] == "E0023"));
    assert_eq!(lines[50]["omitted"]["errors"], 20);
    assert_eq!(lines[50]["omitted"]["warnings"], 0);
    assert_eq!(lines[50]["message"], "20 more errors not shown");
    // A diagnostic is not the count, nor the count a diagnostic.
    let mut errors = Vec::new();
    let mut mixed = lines[50].clone();
    mixed["code"] = "E0023".into();
    validate(&schema, &schema, &mixed, "mixed", &mut errors);
    assert_eq!(errors.len(), 1, "{errors:?}");

    let matcher = read_json("docs/tcprelay-problem-matcher.json");
    let regexp = matcher["problemMatcher"][0]["pattern"][0]["regexp"]
        .as_str()
        .expect("regexp");
    let re = regex::Regex::new(regexp).expect("the regexp compiles");
    let short = stdout(&cc(dir.path(), &["check", "--format", "short", "many.cfg"]));
    let lines: Vec<&str> = short.lines().collect();
    assert_eq!(lines.len(), 51, "{short}");
    assert!(lines[..50].iter().all(|l| re.is_match(l)), "{short}");
    assert_eq!(lines[50], "many.cfg: 20 more errors not shown");
    assert!(!re.is_match(lines[50]));
}

/// The outputs shown in `docs/editors.md` are what `tcprelay-cc` prints.
#[test]
fn the_outputs_shown_are_real() {
    let doc = doc();
    let case = "tests/ui/fail/E0030-duplicate-listener.cfg";
    let root = harness::root();
    let short = stdout(&cc(&root, &["check", "--format", "short", case]));
    assert!(
        fenced(&doc, "text").contains(&short.trim_end()),
        "docs/editors.md should show:\n{short}"
    );
    let json = stdout(&cc(&root, &["check", "--format", "json", case]));
    let shown: Value = fenced(&doc, "json")
        .iter()
        .find(|b| b.starts_with('{') && !b.contains('\n'))
        .map(|b| serde_json::from_str(b).expect("the example is JSON"))
        .expect("an example line");
    let real: Value = serde_json::from_str(json.trim_end()).expect("JSON");
    assert_eq!(shown, real, "docs/editors.md should show:\n{json}");
    assert!(Path::new(&root.join(case)).exists());
}
