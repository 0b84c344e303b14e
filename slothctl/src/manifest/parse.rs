//! Parsing one file's text into documents: JSON values, or YAML documents
//! decoded under guards (flow depth, an expansion budget against alias
//! bombs).

use super::read::check_size;
use super::*;

/// How much the YAML documents of one manifest may decode to: string bytes
/// plus [`YAML_NODE_COST`] per value. An alias (`*a`) repeats the whole node
/// its anchor names, so without a bound a few kilobytes of aliases decode to
/// gigabytes ("billion laughs").
pub(super) const MAX_YAML_EXPANSION: usize = 64 * 1024 * 1024;

/// The deepest nesting of YAML flow collections (`[`, `{`) a manifest may
/// have, counting every bracket in the text. libyaml's scanner does work
/// proportional to the open flow levels for every token, so 100k nested
/// `{a: ` took half a minute to refuse; serde_norway refuses more than 128
/// levels of nesting anyway, so this only turns that refusal into a quick one.
pub(super) const MAX_YAML_FLOW_DEPTH: usize = 256;

/// What one decoded value counts against [`MAX_YAML_EXPANSION`], roughly
/// the memory a `serde_json::Value` takes.
pub(super) const YAML_NODE_COST: usize = 32;

/// Parses one file's text: JSON (one or more values) or YAML documents.
pub(crate) fn parse(source: &str, text: &str, json: bool) -> Result<Vec<Document>, String> {
    check_size(source, text.len())?;
    let values = if json {
        parse_json(source, text)?
    } else {
        parse_yaml(source, text)?
    };
    let mut docs = Vec::new();
    for (index, value) in values {
        let doc = |item, value| Document {
            source: source.to_string(),
            index,
            item,
            value,
        };
        match value {
            Value::Null => {}
            Value::Array(items) => {
                docs.extend(items.into_iter().enumerate().map(|(i, v)| doc(Some(i), v)));
            }
            Value::Object(ref map)
                if map.get("kind").and_then(Value::as_str) == Some("List")
                    && map.get("items").is_some_and(Value::is_array) =>
            {
                let items = match map.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                docs.extend(items.into_iter().enumerate().map(|(i, v)| doc(Some(i), v)));
            }
            value => docs.push(doc(None, value)),
        }
    }
    Ok(docs)
}

/// `(1-based index, value)` per YAML document; empty documents are Null.
pub(super) fn parse_yaml(source: &str, text: &str) -> Result<Vec<(usize, Value)>, String> {
    check_flow_depth(source, text)?;
    let mut values = Vec::new();
    let mut budget = MAX_YAML_EXPANSION;
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        match BudgetedValue(&mut budget).deserialize(document) {
            Ok(value) => values.push((i + 1, value)),
            Err(e) => {
                let at = match e.location() {
                    Some(l) if !e.to_string().contains("line ") => {
                        format!(" at line {} column {}", l.line(), l.column())
                    }
                    _ => String::new(),
                };
                return Err(format!(
                    "error: {source} (document {}): invalid YAML: {e}{at}",
                    i + 1
                ));
            }
        }
    }
    Ok(values)
}

/// Refuses YAML whose brackets open more than [`MAX_YAML_FLOW_DEPTH`]
/// levels, before libyaml scans it.
pub(super) fn check_flow_depth(source: &str, text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => continue,
        }
        if depth > MAX_YAML_FLOW_DEPTH {
            let line = text.as_bytes()[..at]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(format!(
                "error: {source}: invalid YAML: more than {MAX_YAML_FLOW_DEPTH} nested `[` or \
                 `{{` (at line {line})"
            ));
        }
    }
    Ok(())
}

/// Decodes a YAML document into JSON as `serde_json::Value`'s own
/// `Deserialize` does, but charging every value (aliases expanded, so once
/// per repetition) to a budget shared by the documents of a file, and
/// failing, before allocating more, once the budget is spent. serde_norway
/// bounds nesting (128 levels) and alias jumps (100 per event), not the size
/// of what aliases expand to.
pub(super) struct BudgetedValue<'a>(&'a mut usize);

impl BudgetedValue<'_> {
    fn charge<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        match self.0.checked_sub(YAML_NODE_COST.saturating_add(bytes)) {
            Some(left) => {
                *self.0 = left;
                Ok(())
            }
            None => Err(E::custom(format!(
                "the manifest expands to more than {} MiB of data (too many YAML aliases?)",
                MAX_YAML_EXPANSION / (1024 * 1024)
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for BudgetedValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BudgetedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(mut self, v: i128) -> Result<Value, E> {
        self.charge(0)?;
        <Number as serde::Deserialize>::deserialize(de::value::I128Deserializer::<E>::new(v))
            .map(Value::Number)
    }

    fn visit_u128<E: de::Error>(mut self, v: u128) -> Result<Value, E> {
        self.charge(0)?;
        <Number as serde::Deserialize>::deserialize(de::value::U128Deserializer::<E>::new(v))
            .map(Value::Number)
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(BudgetedValue(&mut *self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(BudgetedKey(&mut *self.0))? {
            let value = map.next_value_seed(BudgetedValue(&mut *self.0))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A mapping key: a string (as `serde_json::Value` reads keys), charged.
pub(super) struct BudgetedKey<'a>(&'a mut usize);

impl<'de> DeserializeSeed<'de> for BudgetedKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BudgetedKey<'_> {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        BudgetedValue(self.0).charge(v.len())?;
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        BudgetedValue(self.0).charge(v.len())?;
        Ok(v)
    }
}

/// `(1-based index, value)` per JSON value in the text.
pub(super) fn parse_json(source: &str, text: &str) -> Result<Vec<(usize, Value)>, String> {
    let mut values = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let value = value
            .map_err(|e| format!("error: {source} (document {}): invalid JSON: {e}", i + 1))?;
        values.push((i + 1, value));
    }
    Ok(values)
}
