//! `http`: GET and POST with a timeout (30 s unless given), returning
//! `{status, body, headers}`; HTTP error statuses are answers, not errors.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, Table, Value};

use super::{ModuleTable, RunCtx, check_options, fail, opt_seconds, opt_string_map, type_name};

/// The timeout of a request that names none.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of a response body read.
pub(super) const MAX_BODY: u64 = 64 * 1024 * 1024;

const OPTIONS: &[&str] = &["timeout", "headers"];

/// One request; `net` sends its own through [`fetch`].
pub(super) struct Request {
    pub method: &'static str,
    pub url: String,
    pub body: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
}

pub(super) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "http")?;
    m.add("http.get", |lua, c, args| {
        let url = args.string(1, "url")?;
        let opts = args.opt_table(2, "options")?;
        call(lua, c, args.func(), "GET", url, None, opts.as_ref())
    })?;
    m.add("http.post", |lua, c, args| {
        let url = args.string(1, "url")?;
        let body = match args.get(2) {
            Value::Nil => Vec::new(),
            Value::String(s) => s.as_bytes().to_vec(),
            other => {
                return Err(args.fail(format!(
                    "argument 2 (body) must be a string, got {} (use json.encode)",
                    type_name(&other)
                )));
            }
        };
        let opts = args.opt_table(3, "options")?;
        call(lua, c, args.func(), "POST", url, Some(body), opts.as_ref())
    })?;
    Ok(m.into_table())
}

pub(super) fn call(
    lua: &Lua,
    ctx: &RunCtx,
    func: &'static str,
    method: &'static str,
    url: String,
    body: Option<Vec<u8>>,
    opts: Option<&Table>,
) -> mlua::Result<Table> {
    check_options(func, opts, OPTIONS)?;
    let timeout = opt_seconds(func, opts, "timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(fail(func, "option timeout must be more than 0 seconds"));
    }
    let headers = opt_string_map(func, opts, "headers")?;
    let answer = fetch(
        ctx,
        func,
        Request {
            method,
            url,
            body,
            headers,
            timeout,
        },
    )?;
    let result = lua.create_table()?;
    result.set("status", answer.status)?;
    result.set("body", lua.create_string(&answer.body)?)?;
    let headers = lua.create_table()?;
    for (name, value) in answer.headers {
        headers.set(name, value)?;
    }
    result.set("headers", headers)?;
    Ok(result)
}

/// Sends `request` on a thread, waiting for its answer in slices so that a
/// stop or the task's deadline is not held up by a slow server.
pub(super) fn fetch(ctx: &RunCtx, func: &str, mut request: Request) -> mlua::Result<Answer> {
    let url = &request.url;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(fail(
            func,
            format!("argument 1 (url) {url:?} must start with http:// or https://"),
        ));
    }
    ctx.ctl.checked()?;
    // The task's deadline is enforced by `wait` below; the request outlives
    // it by a margin so that the deadline, not the request, ends it (and
    // the task fails TimedOut, not with an HTTP error).
    if let Some(left) = ctx.ctl.remaining() {
        request.timeout = request.timeout.min(left + Duration::from_secs(1));
    }
    // The thread ends at its timeout.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(send(&request));
    });
    match ctx.ctl.wait(&rx)? {
        Ok(answer) => Ok(answer),
        Err(e) => {
            ctx.ctl.checked()?;
            Err(fail(func, e))
        }
    }
}

fn send(request: &Request) -> Result<Answer, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(request.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let what = format!("{} {}", request.method, request.url);
    let body = request.body.as_deref().unwrap_or_default();
    macro_rules! with_headers {
        ($builder:expr) => {{
            let mut builder = $builder;
            for (k, v) in &request.headers {
                builder = builder.header(k, v);
            }
            builder
        }};
    }
    let response = match request.method {
        "POST" => with_headers!(agent.post(&request.url)).send(body),
        "PUT" => with_headers!(agent.put(&request.url)).send(body),
        "DELETE" => with_headers!(agent.delete(&request.url)).call(),
        _ => with_headers!(agent.get(&request.url)).call(),
    };
    let mut response = response.map_err(|e| format!("{what}: {e}"))?;
    let status = response.status().as_u16();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("{what}: cannot read the body: {e}"))?;
    Ok(Answer {
        status,
        body,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::Ctl;
    use super::super::test_http::{Reply, serve};
    use super::super::testing::{assert_errors, state, state_with};

    /// A loopback server answering each request with its method, path, the
    /// `x-test` header and the body it got; `/slow` never answers.
    fn server() -> String {
        let address = serve(|request| {
            if request.path == "/slow" {
                std::thread::sleep(Duration::from_secs(30));
                return None;
            }
            let text = format!(
                "{} {} {} {}",
                request.method,
                request.path,
                request.header("x-test").unwrap_or_default(),
                String::from_utf8_lossy(&request.body)
            );
            Some(Reply {
                status: if request.path == "/missing" {
                    "404 Not Found"
                } else {
                    "200 OK"
                },
                headers: vec!["x-reply: yes".into()],
                body: text,
            })
        });
        format!("http://{address}")
    }

    #[test]
    fn get_and_post() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        lua.globals().set("base", server()).expect("set");
        lua.load(
            r#"
            local r = http.get(base .. "/a?x=1", {headers = {["X-Test"] = "h1"}})
            assert(r.status == 200, r.status)
            assert(r.body == "GET /a?x=1 h1 ", r.body)
            assert(r.headers["x-reply"] == "yes")
            local p = http.post(base .. "/p", '{"k":1}', {timeout = 5})
            assert(p.status == 200 and p.body == 'POST /p  {"k":1}', p.body)
            local m = http.get(base .. "/missing")
            assert(m.status == 404)
            "#,
        )
        .exec()
        .expect("http");
    }

    #[test]
    fn timeouts_and_the_task_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = server();
        let (lua, _ctx) = state(dir.path());
        lua.globals().set("base", base.clone()).expect("set");
        let started = Instant::now();
        let e = lua
            .load("http.get(base .. '/slow', {timeout = 0.3})")
            .exec()
            .expect_err("timeout");
        assert!(e.to_string().contains("http.get: GET"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let (lua, _ctx) = state_with(dir.path(), Ctl::new(Some(Duration::from_millis(200)), None));
        lua.globals().set("base", base).expect("set");
        let started = Instant::now();
        let e = lua
            .load("http.get(base .. '/slow')")
            .exec()
            .expect_err("deadline");
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "http.get()",
                "http.get: argument 1 (url) must be a string, got nil",
            ),
            (
                "http.get('ftp://x')",
                "http.get: argument 1 (url) \"ftp://x\" must start with http://",
            ),
            (
                "http.get('http://x', 1)",
                "http.get: argument 2 (options) must be a table or nil",
            ),
            (
                "http.get('http://x', {timeout = 0})",
                "http.get: option timeout must be more than 0",
            ),
            (
                "http.get('http://x', {headers = 'h'})",
                "http.get: option headers must be a table",
            ),
            (
                "http.get('http://x', {retries = 1})",
                "http.get: unknown option \"retries\"",
            ),
            (
                "http.post('http://x', {})",
                "http.post: argument 2 (body) must be a string, got table",
            ),
            (
                "http.post('http://x', 'b', 'o')",
                "http.post: argument 3 (options) must be a table or nil",
            ),
        ]);
    }
}
