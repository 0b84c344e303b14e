//! `yaml`: encode a Lua value as YAML text, decode YAML text into Lua
//! values (`null` is `json.null`).

use mlua::{Lua, LuaSerdeExt, MultiValue, Table};

use super::{Args, fail};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|lua, args: MultiValue| {
            let args = Args::new("yaml.encode", args);
            let value: serde_json::Value = lua.from_value(args.get(1)).map_err(|e| {
                fail(
                    "yaml.encode",
                    format!("argument 1 (value) cannot be encoded: {e}"),
                )
            })?;
            serde_norway::to_string(&value).map_err(|e| fail("yaml.encode", e))
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, args: MultiValue| {
            let args = Args::new("yaml.decode", args);
            let text = args.string(1, "text")?;
            let value: serde_json::Value = serde_norway::from_str(&text)
                .map_err(|e| fail("yaml.decode", format!("invalid YAML: {e}")))?;
            lua.to_value(&value)
        })?,
    )?;
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
            local v = yaml.decode("name: app\nports: [80, 443]\nnested:\n  on: true\n  nothing: null\n")
            assert(v.name == "app" and v.ports[2] == 443 and v.nested.on == true)
            assert(v.nested.nothing == json.null)
            local text = yaml.encode({name = "app", list = {1, 2}})
            assert(text == "list:\n- 1\n- 2\nname: app\n", text)
            local again = yaml.decode(yaml.encode(v))
            assert(again.ports[1] == 80 and again.name == "app")
            "#,
        )
        .exec()
        .expect("yaml");
    }

    #[test]
    fn bad_input_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        assert_error(
            &lua,
            "yaml.decode(1)",
            "yaml.decode: argument 1 (text) must be a string, got number",
        );
        assert_error(&lua, "yaml.decode('a: [')", "yaml.decode: invalid YAML");
        assert_error(
            &lua,
            "yaml.encode(function() end)",
            "yaml.encode: argument 1 (value) cannot be encoded",
        );
    }
}
