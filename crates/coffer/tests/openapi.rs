//! The OpenAPI document as a contract: its shape (every operation with its parameters and
//! statuses, every schema with its fields) is checked in as `openapi-shape.txt`, so a
//! change to a route, a field or a status shows up in review as a diff of that file, and a
//! refactoring that should change nothing is proven to change nothing.
//!
//! After a deliberate change: `COFFER_UPDATE_OPENAPI_SHAPE=1 cargo test --test openapi`.

use std::{collections::BTreeSet, fmt::Write as _};

use serde_json::Value;
use utoipa::OpenApi as _;

const SHAPE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi-shape.txt");

fn document() -> Value {
    serde_json::to_value(coffer::http::openapi::ApiDoc::openapi()).expect("the document serialises")
}

/// One line per operation, per schema and per security scheme, sorted. Descriptions are
/// left out: they are prose, free to change.
fn shape(doc: &Value) -> String {
    let mut lines = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let mut parameters: Vec<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|parameter| {
                    let required = if parameter["required"] == Value::Bool(true) { "!" } else { "" };
                    format!(
                        "{}:{}{required}",
                        parameter["name"].as_str().unwrap_or("?"),
                        parameter["in"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            parameters.sort();
            let body = operation["requestBody"]["content"]
                .as_object()
                .map(|content| content.keys().cloned().collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            let statuses: Vec<&String> = operation["responses"]
                .as_object()
                .map(|responses| responses.keys().collect())
                .unwrap_or_default();
            let security: BTreeSet<String> = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|requirement| requirement.as_object())
                .flat_map(|requirement| requirement.keys().cloned())
                .collect();
            lines.insert(format!(
                "{} {path} id={} params=[{}] body=[{body}] statuses={statuses:?} security={security:?}",
                method.to_uppercase(),
                operation["operationId"].as_str().unwrap_or("?"),
                parameters.join(" "),
            ));
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        let mut fields: Vec<String> = schema["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        let required: BTreeSet<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for field in &mut fields {
            if required.contains(field.as_str()) {
                field.push('!');
            }
        }
        let variants = schema["oneOf"].as_array().map_or(0, Vec::len);
        let values: Vec<String> =
            schema["enum"].as_array().into_iter().flatten().map(Value::to_string).collect();
        lines.insert(format!(
            "schema {name} fields=[{}] one_of={variants} enum=[{}]",
            fields.join(" "),
            values.join(" ")
        ));
    }
    for name in doc["components"]["securitySchemes"].as_object().expect("security schemes").keys() {
        lines.insert(format!("security {name}"));
    }
    let mut out = String::new();
    for line in lines {
        writeln!(out, "{line}").unwrap();
    }
    out
}

#[test]
fn the_document_keeps_its_checked_in_shape() {
    let now = shape(&document());
    if std::env::var_os("COFFER_UPDATE_OPENAPI_SHAPE").is_some() {
        std::fs::write(SHAPE_FILE, &now).expect("write the shape file");
        return;
    }
    let before = std::fs::read_to_string(SHAPE_FILE).expect("the checked-in shape file");
    if now != before {
        let removed: Vec<&str> = before.lines().filter(|line| !now.lines().any(|l| l == *line)).collect();
        let added: Vec<&str> = now.lines().filter(|line| !before.lines().any(|l| l == *line)).collect();
        panic!(
            "the OpenAPI document changed shape (routes, parameters, statuses, schemas or fields).\n\
             Removed:\n  {}\nAdded:\n  {}\nIf this is deliberate, run with COFFER_UPDATE_OPENAPI_SHAPE=1 and commit {SHAPE_FILE}.",
            removed.join("\n  "),
            added.join("\n  "),
        );
    }
}

/// Every `$ref` in `value`, with where it was found.
fn refs<'a>(value: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                if key == "$ref" {
                    if let Some(target) = child.as_str() {
                        out.push((at.to_owned(), target));
                    }
                } else {
                    refs(child, &format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
}

/// A client generator drops an operation whose `$ref` leads nowhere, silently.
#[test]
fn every_reference_resolves() {
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(!found.is_empty());
    let dangling: Vec<String> = found
        .iter()
        .filter(|(_, target)| {
            let pointer = target.strip_prefix('#').unwrap_or("not a local reference");
            doc.pointer(pointer).is_none()
        })
        .map(|(at, target)| format!("{at} -> {target}"))
        .collect();
    assert!(dangling.is_empty(), "references that resolve to nothing:\n{}", dangling.join("\n"));
}

/// Path parameters are exactly the route's `{placeholders}`; everything else is in the
/// query or a header, never a path parameter the route does not have.
#[test]
fn every_parameter_is_where_the_route_puts_it() {
    let doc = document();
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let placeholders: BTreeSet<&str> =
            path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect();
        for (method, operation) in item.as_object().expect("path item") {
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let declared: BTreeSet<&str> = parameters
                .iter()
                .filter(|parameter| parameter["in"] == "path")
                .filter_map(|parameter| parameter["name"].as_str())
                .collect();
            if declared != placeholders {
                wrong.push(format!(
                    "{method} {path}: path parameters {declared:?}, route has {placeholders:?}"
                ));
            }
            for parameter in &parameters {
                let location = parameter["in"].as_str().unwrap_or_default();
                if !["path", "query", "header"].contains(&location) {
                    wrong.push(format!("{method} {path}: {} is in {location:?}", parameter["name"]));
                }
                if location == "path" && parameter["required"] != Value::Bool(true) {
                    wrong.push(format!(
                        "{method} {path}: path parameter {} is not required",
                        parameter["name"]
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// OpenAPI requires each operationId once: a generator naming functions by it would
/// otherwise make two functions of one name.
#[test]
fn operation_ids_are_unique() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(seen.insert(id.to_owned()), "operationId {id} used again by {method} {path}");
        }
    }
}

/// Two types deriving `ToSchema` under one name are one schema in the document: the last
/// registered silently replaces the other, and every route using the first is documented
/// with the wrong fields. Every name is used once (the source is scanned, since the
/// document cannot show what it lost).
#[test]
fn schema_names_are_unique() {
    let mut directories = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                directories.push(path);
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = source.lines().collect();
            for (at, line) in lines.iter().enumerate() {
                if !(line.trim_start().starts_with("#[derive(") && line.contains("ToSchema")) {
                    continue;
                }
                let Some(item) = lines[at + 1..].iter().take(8).find_map(|next| {
                    let next = next.trim_start();
                    next.strip_prefix("pub struct ").or_else(|| next.strip_prefix("pub enum "))
                }) else {
                    continue;
                };
                let name: String = item.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let renamed = lines[at + 1..].iter().take(8).any(|next| next.contains("#[schema(as"));
                if renamed {
                    continue;
                }
                if let Some(other) = seen.insert(name.clone(), path.display().to_string()) {
                    panic!("the schema name {name} is used in {other} and {}", path.display());
                }
            }
        }
    }
    assert!(seen.len() > 50, "the scan found the schemas: {}", seen.len());
}
