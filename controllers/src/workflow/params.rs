//! `$(params.NAME)` substitution into task payloads (pure).

use std::collections::BTreeMap;

use sloth_sdk::objects::common::Payload;

/// Replaces every `$(params.NAME)` whose NAME is in `params`; unknown names
/// are left as they are (validation reports them elsewhere).
pub fn substitute(text: &str, params: &BTreeMap<String, String>) -> String {
    const OPEN: &str = "$(params.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        match after.find(')') {
            Some(end) if params.contains_key(&after[..end]) => {
                out.push_str(&params[&after[..end]]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The payload with parameters substituted into its shell and lua script text.
pub fn substitute_payload(run: &Payload, params: &BTreeMap<String, String>) -> Payload {
    let mut run = run.clone();
    if let Some(shell) = run.shell.as_mut() {
        *shell = substitute(shell, params);
    }
    if let Some(lua) = run.lua.as_mut() {
        lua.script = substitute(&lua.script, params);
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            ("n".to_string(), "3".to_string()),
        ])
    }

    #[test]
    fn substitutes_known_params() {
        assert_eq!(
            substitute("deploy $(params.env) x$(params.n)$(params.n)", &params()),
            "deploy prod x33"
        );
    }

    #[test]
    fn leaves_unknown_and_malformed() {
        assert_eq!(
            substitute("$(params.nope) $(params.env", &params()),
            "$(params.nope) $(params.env"
        );
        assert_eq!(substitute("no params here", &params()), "no params here");
        assert_eq!(
            substitute("$(params.nope)$(params.env)", &params()),
            "$(params.nope)prod"
        );
    }

    #[test]
    fn substitutes_shell_and_lua() {
        let run = Payload {
            shell: Some("echo $(params.env)".into()),
            lua: Some(sloth_sdk::objects::common::LuaPayload {
                script: "print('$(params.n)')".into(),
                ..Default::default()
            }),
        };
        let out = substitute_payload(&run, &params());
        assert_eq!(out.shell.as_deref(), Some("echo prod"));
        assert_eq!(out.lua.map(|l| l.script).as_deref(), Some("print('3')"));
    }
}
