//! `yaml`: encode a Lua value as YAML text, decode YAML text into Lua
//! values (`null` is `json.null`).

use std::rc::Rc;

use mlua::{Lua, Table};

use super::json::decode;
use super::{ModuleTable, RunCtx};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "yaml")?;
    m.add("yaml.encode", |lua, _, args| {
        let value = args.json(lua, 1, "value", "cannot be encoded")?;
        serde_norway::to_string(&value).map_err(|e| args.fail(e))
    })?;
    m.add("yaml.decode", |lua, _, args| {
        decode(lua, &args, "YAML", |text| serde_norway::from_str(text))
    })?;
    Ok(m.into_table())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, exec_ok};

    #[test]
    fn round_trips() {
        exec_ok(
            r#"
            local v = yaml.decode("name: app\nports: [80, 443]\nnested:\n  on: true\n  nothing: null\n")
            assert(v.name == "app" and v.ports[2] == 443 and v.nested.on == true)
            assert(v.nested.nothing == json.null)
            local text = yaml.encode({name = "app", list = {1, 2}})
            assert(text == "list:\n- 1\n- 2\nname: app\n", text)
            local again = yaml.decode(yaml.encode(v))
            assert(again.ports[1] == 80 and again.name == "app")
            "#,
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert_errors(&[
            (
                "yaml.decode(1)",
                "yaml.decode: argument 1 (text) must be a string, got number",
            ),
            ("yaml.decode('a: [')", "yaml.decode: invalid YAML"),
            (
                "yaml.encode(function() end)",
                "yaml.encode: argument 1 (value) cannot be encoded",
            ),
        ]);
    }
}
