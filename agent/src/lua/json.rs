//! `json`: encode a Lua value as JSON text, decode JSON text into Lua
//! values (`null` is `json.null`; arrays keep their array shape).

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};

use super::{Args, fail};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|lua, args: MultiValue| {
            let args = Args::new("json.encode", args);
            let value = args.get(1);
            let pretty = match args.get(2) {
                Value::Nil => false,
                Value::Boolean(b) => b,
                other => {
                    return Err(fail(
                        "json.encode",
                        format!(
                            "argument 2 (pretty) must be a boolean or nil, got {}",
                            super::type_name(&other)
                        ),
                    ));
                }
            };
            let json: serde_json::Value = lua.from_value(value).map_err(|e| {
                fail(
                    "json.encode",
                    format!("argument 1 (value) cannot be encoded: {e}"),
                )
            })?;
            let text = if pretty {
                serde_json::to_string_pretty(&json)
            } else {
                serde_json::to_string(&json)
            };
            text.map_err(|e| fail("json.encode", e))
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, args: MultiValue| {
            let args = Args::new("json.decode", args);
            let text = args.string(1, "text")?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| fail("json.decode", format!("invalid JSON: {e}")))?;
            lua.to_value(&json)
        })?,
    )?;
    t.set("null", lua.null())?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, state};

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        lua.load(
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
        )
        .exec()
        .expect("json");
    }

    #[test]
    fn bad_input_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        assert_error(
            &lua,
            "json.decode()",
            "json.decode: argument 1 (text) must be a string, got nil",
        );
        assert_error(&lua, "json.decode('{')", "json.decode: invalid JSON");
        assert_error(
            &lua,
            "json.encode(print)",
            "json.encode: argument 1 (value) cannot be encoded",
        );
        assert_error(
            &lua,
            "json.encode({}, 1)",
            "json.encode: argument 2 (pretty) must be a boolean",
        );
    }
}
