//! Reading Pods, Nodes, Events and Leases from files: a kubectl List, multi-document YAML, or
//! JSON. Errors name the line (syntax) or the document, item and field (content).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What was read.
#[derive(Default, Debug)]
pub struct Objects {
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub events: Vec<Event>,
    pub leases: Vec<Lease>,
    /// Objects of other kinds, as "Kind name", skipped.
    pub skipped: Vec<String>,
}

/// Unreadable input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{source_name}: line {line}, column {column}: {problem}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        problem: String,
    },
    #[error("{0}")]
    Content(Box<ContentProblem>),
    #[error("{source_name}: document {document}: {problem}")]
    Document {
        source_name: String,
        document: usize,
        problem: String,
    },
}

/// An object whose content does not fit its kind.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {document}{item}: {what}: field `{path}`: {problem}")]
pub struct ContentProblem {
    source_name: String,
    document: usize,
    item: String,
    what: String,
    path: String,
    problem: String,
}

/// Reads every object of `text`; `source_name` names it in errors (a path, or "stdin").
pub fn read_objects(text: &str, source_name: &str) -> Result<Objects, InputError> {
    let mut objects = Objects::default();
    for (i, doc) in documents(text, source_name)?.into_iter().enumerate() {
        let document = i + 1;
        let Value::Object(map) = &doc else {
            if doc.is_null() {
                continue;
            }
            return Err(InputError::Document {
                source_name: source_name.into(),
                document,
                problem: "expected an object with apiVersion and kind".into(),
            });
        };
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match map.get("items") {
            Some(Value::Array(items)) if kind.ends_with("List") => {
                let item_kind = kind
                    .strip_suffix("List")
                    .filter(|k| !k.is_empty())
                    .map(str::to_string);
                for (j, item) in items.iter().enumerate() {
                    let kind = item
                        .get("kind")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or(item_kind.clone());
                    add(
                        &mut objects,
                        item,
                        kind.as_deref().unwrap_or(""),
                        source_name,
                        document,
                        Some(j),
                    )?;
                }
            }
            _ => add(&mut objects, &doc, &kind, source_name, document, None)?,
        }
    }
    Ok(objects)
}

fn documents(text: &str, source_name: &str) -> Result<Vec<Value>, InputError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON: one value, or a stream of values (kubectl get -o json prints one List).
        let mut out = Vec::new();
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            let value = value.map_err(|e| syntax(source_name, e.line(), e.column(), &e))?;
            match value {
                Value::Array(items) => out.extend(items),
                v => out.push(v),
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            syntax(source_name, line, column, &e)
        })?;
        let document = out.len() + 1;
        let json = serde_json::to_value(value).map_err(|e| InputError::Document {
            source_name: source_name.into(),
            document,
            problem: format!("not representable as JSON: {e}"),
        })?;
        out.push(json);
    }
    Ok(out)
}

/// A syntax error at a place; the parser's own "at line ..." suffix is dropped (we say it first).
fn syntax(source_name: &str, line: usize, column: usize, e: &dyn std::fmt::Display) -> InputError {
    let text = e.to_string();
    let problem = text.split(" at line").next().unwrap_or_default().to_string();
    InputError::Syntax {
        source_name: source_name.into(),
        line,
        column,
        problem,
    }
}

fn add(
    objects: &mut Objects,
    value: &Value,
    kind: &str,
    source_name: &str,
    document: usize,
    item: Option<usize>,
) -> Result<(), InputError> {
    let name = {
        let meta = value.get("metadata");
        let ns = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str);
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        match ns {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        }
    };
    let what = format!(
        "{} {name}",
        if kind.is_empty() {
            "object without kind"
        } else {
            kind
        }
    );
    let typed = |objects: &mut Objects| -> Result<(), (String, String)> {
        match kind {
            "Pod" => objects.pods.push(typed(value)?),
            "Node" => objects.nodes.push(typed(value)?),
            "Event" => objects.events.push(typed(value)?),
            "Lease" => objects.leases.push(typed(value)?),
            _ => objects.skipped.push(what.clone()),
        }
        Ok(())
    };
    typed(objects).map_err(|(path, problem)| {
        InputError::Content(Box::new(ContentProblem {
            source_name: source_name.into(),
            document,
            item: item.map(|i| format!(", item {i}")).unwrap_or_default(),
            what: what.clone(),
            path,
            problem,
        }))
    })
}

fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_streams_and_skips_other_kinds() {
        let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, namespace: x}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\n";
        let objects = read_objects(yaml, "in.yaml").unwrap();
        assert_eq!(objects.pods.len(), 1);
        assert_eq!(objects.nodes.len(), 1);
        assert_eq!(objects.skipped, ["Service s"]);
        let json = r#"{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"a"}}]}"#;
        assert_eq!(read_objects(json, "in.json").unwrap().pods.len(), 1);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = read_objects("kind: Pod\nmetadata:\n  name: [unclosed\n", "bad.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("bad.yaml: line 4") || err.starts_with("bad.yaml: line 3"),
            "{err}"
        );
        let err = read_objects("{\"kind\": \"Pod\",\n \"metadata\": {]}", "bad.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.json: line 2"), "{err}");
    }

    #[test]
    fn content_errors_name_the_item_and_field() {
        let yaml = "kind: List\nitems:\n- kind: Pod\n  metadata: {name: a, namespace: x}\n  status: {containerStatuses: [{name: c, image: i, imageID: '', ready: true, restartCount: many}]}\n";
        let err = read_objects(yaml, "in.yaml").unwrap_err().to_string();
        assert!(
            err.contains("document 1, item 0: Pod x/a: field `status.containerStatuses[0].restartCount`"),
            "{err}"
        );
    }
}
