//! kubectl's JSONPath templates (`-o jsonpath=`, `custom-columns`,
//! `--sort-by`, `wait --for=jsonpath=`): text with `{EXPR}` blocks,
//! `{range EXPR}...{end}` and `{"literal"}`. Each expression is kubectl's
//! spelling (`.metadata.name`, `.items[*]`, `[?(@.type=="Ready")]`),
//! translated to RFC 9535 and run by serde_json_path.

use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed template.
#[derive(Debug)]
pub(crate) struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    /// Text printed as it is.
    Text(String),
    /// The values an expression selects, separated by spaces.
    Path(JsonPath),
    /// The body once per value selected, each as the current value.
    Range(JsonPath, Vec<Node>),
}

impl Template {
    /// Parses `text`; the error names what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut stack: Vec<(Option<JsonPath>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push(&mut stack, Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                push(&mut stack, Node::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close =
                closing_brace(after).ok_or_else(|| format!("unclosed {{ in template {text:?}"))?;
            let block = after[..close].trim();
            rest = &after[close + 1..];
            if let Some(expr) = block.strip_prefix("range ") {
                stack.push((Some(compile(expr)?), Vec::new()));
            } else if block == "end" {
                let (Some(path), body) = stack.pop().unwrap_or((None, Vec::new())) else {
                    return Err(format!("{{end}} without {{range}} in template {text:?}"));
                };
                push(&mut stack, Node::Range(path, body));
            } else if block.starts_with('"') || block.starts_with('\'') {
                push(&mut stack, Node::Text(unquote(block)?));
            } else {
                push(&mut stack, Node::Path(compile(block)?));
            }
        }
        match stack.pop() {
            Some((None, nodes)) if stack.is_empty() => Ok(Self { nodes }),
            _ => Err(format!("{{range}} without {{end}} in template {text:?}")),
        }
    }

    /// A template of one expression, with or without its braces (kubectl's
    /// relaxed form for custom-columns and --sort-by: `.status.phase`,
    /// `{.status.phase}`, `status.phase`).
    pub(crate) fn relaxed(expr: &str) -> Result<Self, String> {
        let expr = expr.trim();
        if expr.starts_with('{') != expr.ends_with('}') {
            return Err(format!("unbalanced braces in {expr:?}"));
        }
        let inner = expr
            .strip_prefix('{')
            .and_then(|e| e.strip_suffix('}'))
            .unwrap_or(expr);
        let inner = if inner.starts_with(['.', '[', '$', '@']) {
            inner.to_string()
        } else {
            format!(".{inner}")
        };
        Self::parse(&format!("{{{inner}}}"))
    }

    /// The text the template makes of `value`. Missing fields print nothing
    /// (kubectl's default, --allow-missing-template-keys).
    pub(crate) fn render(&self, value: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, value, &mut out);
        out
    }

    /// Every value the template's expressions select (for custom-columns,
    /// --sort-by and wait, where the template is one expression).
    pub(crate) fn values<'a>(&self, value: &'a Value) -> Vec<&'a Value> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Path(path) => Some(path.query(value).all()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

fn push(stack: &mut [(Option<JsonPath>, Vec<Node>)], node: Node) {
    if let Some((_, nodes)) = stack.last_mut() {
        nodes.push(node);
    }
}

fn render_nodes(nodes: &[Node], value: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(path) => {
                let texts: Vec<String> = path.query(value).all().into_iter().map(text).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(path, body) => {
                for item in path.query(value).all() {
                    render_nodes(body, item, out);
                }
            }
        }
    }
}

/// A value as kubectl prints it: strings bare, everything else as JSON.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where the `}` closing a block is, skipping quoted strings and brackets.
fn closing_brace(text: &str) -> Option<usize> {
    let mut quote = None;
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            '}' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// `{"\n"}`: a quoted literal with `\n`, `\t`, `\\` and `\"` escapes.
fn unquote(block: &str) -> Result<String, String> {
    let quote = block.chars().next().unwrap_or('"');
    let inner = block
        .strip_prefix(quote)
        .and_then(|b| b.strip_suffix(quote))
        .ok_or_else(|| format!("unterminated string {block}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Ok(out)
}

/// kubectl's expression as RFC 9535: `.a.b` becomes `$['a']['b']` (so
/// names may hold `-` and `/`; `\.` is a dot inside a name), `.*` becomes
/// `[*]`, brackets are kept as they are.
fn compile(expr: &str) -> Result<JsonPath, String> {
    let rfc = translate(expr)?;
    JsonPath::parse(&rfc).map_err(|e| format!("invalid JSONPath {expr:?}: {e}"))
}

fn translate(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let body = expr
        .strip_prefix('$')
        .or_else(|| expr.strip_prefix('@'))
        .unwrap_or(expr);
    let mut out = String::from("$");
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    out.push_str("..");
                    i += 1;
                }
                let mut name = String::new();
                while let Some(&c) = chars.get(i) {
                    match c {
                        '\\' if chars.get(i + 1) == Some(&'.') => {
                            name.push('.');
                            i += 2;
                        }
                        '.' | '[' => break,
                        c if c.is_whitespace() => break,
                        c => {
                            name.push(c);
                            i += 1;
                        }
                    }
                }
                match name.as_str() {
                    "" if out.ends_with("..") => {}
                    "" => {}
                    "*" => out.push_str("[*]"),
                    name => {
                        let escaped = name.replace('\\', "\\\\").replace('\'', "\\'");
                        out.push_str(&format!("['{escaped}']"));
                    }
                }
            }
            '[' => {
                let start = i;
                let close = closing_bracket(&chars, i)
                    .ok_or_else(|| format!("unclosed [ in JSONPath {expr:?}"))?;
                out.extend(&chars[start..=close]);
                i = close + 1;
            }
            c if c.is_whitespace() => i += 1,
            c => {
                return Err(format!(
                    "invalid JSONPath {expr:?}: unexpected {c:?} (paths look like .metadata.name)"
                ));
            }
        }
    }
    Ok(out)
}

/// The index of the `]` closing the `[` at `open`.
fn closing_bracket(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in unquoted(chars.iter().copied().enumerate().skip(open)) {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The characters outside '...' and "..." quotes (the quotes left out
/// too), with their positions: a bracket or comma inside a quoted string is
/// text, not structure.
pub(super) fn unquoted(
    chars: impl Iterator<Item = (usize, char)>,
) -> impl Iterator<Item = (usize, char)> {
    let mut quote = None;
    chars.filter(move |&(_, c)| match quote {
        Some(q) => {
            if c == q {
                quote = None;
            }
            false
        }
        None if c == '"' || c == '\'' => {
            quote = Some(c);
            false
        }
        None => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"sloth.dev/workflow": "w", "app-name": "x"}},
             "status": {"phase": "Succeeded", "exitCode": 0,
                        "conditions": [{"type": "Succeeded", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"phase": "Failed", "exitCode": 3}}
        ]})
    }

    fn render(template: &str, value: &Value) -> String {
        Template::parse(template).expect("template").render(value)
    }

    #[test]
    fn expressions_print_as_kubectl_does() {
        let v = list();
        assert_eq!(render("{.items[*].metadata.name}", &v), "a b");
        assert_eq!(render("{.items[0].status.exitCode}", &v), "0");
        assert_eq!(
            render("phase={.items[1].status.phase}!", &v),
            "phase=Failed!"
        );
        assert_eq!(render("{.items[0].metadata.labels.app-name}", &v), "x");
        assert_eq!(
            render(r"{.items[0].metadata.labels.sloth\.dev/workflow}", &v),
            "w"
        );
        assert_eq!(
            render("{.items[0].metadata.labels['sloth.dev/workflow']}", &v),
            "w"
        );
        assert_eq!(
            render(
                r#"{.items[0].status.conditions[?(@.type=="Succeeded")].status}"#,
                &v
            ),
            "True"
        );
        assert_eq!(render("{.items[*].nothing}", &v), "");
        assert_eq!(render("{$.kind}", &v), "List");
        assert_eq!(render("{.items[1].metadata}", &v), r#"{"name":"b"}"#);
    }

    #[test]
    fn ranges_and_literals() {
        let v = list();
        assert_eq!(
            render(
                r#"{range .items[*]}{.metadata.name}{"\t"}{.status.phase}{"\n"}{end}"#,
                &v
            ),
            "a\tSucceeded\nb\tFailed\n"
        );
    }

    #[test]
    fn bad_templates_say_why() {
        for bad in ["{.a", "{range .items[*]}x", "{end}", "{.items[}", "{.a b}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relaxed_expressions_take_any_spelling() {
        let v = json!({"status": {"phase": "Running"}});
        for e in [
            ".status.phase",
            "{.status.phase}",
            "status.phase",
            "$.status.phase",
        ] {
            let t = Template::relaxed(e).expect(e);
            assert_eq!(t.values(&v), [&json!("Running")], "{e}");
        }
    }
}
