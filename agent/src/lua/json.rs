//! `json`: encode a Lua value as JSON text, decode JSON text into Lua
//! values (`null` is `json.null`; arrays keep their array shape).

use std::fmt;
use std::rc::Rc;

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::{Args, ModuleTable, RunCtx};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "json")?;
    m.add("json.encode", |lua, _, args| {
        let pretty = args.opt_bool(2, "pretty")?.unwrap_or(false);
        let json = args.json(lua, 1, "value", "cannot be encoded")?;
        let text = if pretty {
            serde_json::to_string_pretty(&json)
        } else {
            serde_json::to_string(&json)
        };
        text.map_err(|e| args.fail(e))
    })?;
    m.add("json.decode", |lua, _, args| {
        decode(lua, &args, "JSON", |text| serde_json::from_str(text))
    })?;
    m.set("null", lua.null())?;
    Ok(m.into_table())
}

/// Argument 1 (text) in a data format, read by `parse` into Lua values;
/// `format` names the format in the error ("invalid JSON: ...").
pub(super) fn decode<E: fmt::Display>(
    lua: &Lua,
    args: &Args,
    format: &str,
    parse: impl FnOnce(&str) -> Result<serde_json::Value, E>,
) -> mlua::Result<Value> {
    let text = args.string(1, "text")?;
    let value = parse(&text).map_err(|e| args.fail(format!("invalid {format}: {e}")))?;
    lua.to_value(&value)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, exec_ok};

    #[test]
    fn round_trips() {
        exec_ok(
            r#"
            local v = json.decode('{"a": [1, 2, {"b": null}], "s": "x", "t": true, "f": 1.5}')
            assert(v.a[1] == 1 and v.a[2] == 2 and v.a[3].b == json.null)
            assert(v.s == "x" and v.t == true and v.f == 1.5)
            assert(json.encode({1, 2, 3}) == "[1,2,3]")
            assert(json.encode({k = "v"}) == '{"k":"v"}')
            assert(json.encode("s") == '"s"')
            local again = json.decode(json.encode(v))
            assert(again.a[3].b == json.null and #again.a == 3)
            assert(json.encode(json.decode("[]")) == "[]")
            assert(json.encode({k = 1}, true) == '{\n  "k": 1\n}')
            "#,
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert_errors(&[
            (
                "json.decode()",
                "json.decode: argument 1 (text) must be a string, got nil",
            ),
            ("json.decode('{')", "json.decode: invalid JSON"),
            (
                "json.encode(print)",
                "json.encode: argument 1 (value) cannot be encoded",
            ),
            (
                "json.encode({}, 1)",
                "json.encode: argument 2 (pretty) must be a boolean",
            ),
        ]);
    }
}
