//! `net`: HTTP with JSON bodies (on the `http` module's client), downloads
//! checked against a sha256, TCP connect checks and DNS resolution.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::file_ops::sha256_hex;
use super::http::{self, DEFAULT_TIMEOUT, Request};
use super::tools::result;
use super::{Args, ModuleTable, RunCtx, opt_seconds, opt_string_field, opt_string_map, type_name};

/// How long a TCP check or a DNS lookup waits unless told.
pub(super) const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "net")?;
    m.add("net.get", |lua, c, a| request(lua, c, a, "GET"))?;
    m.add("net.post", |lua, c, a| request(lua, c, a, "POST"))?;
    m.add("net.put", |lua, c, a| request(lua, c, a, "PUT"))?;
    m.add("net.delete", |lua, c, a| request(lua, c, a, "DELETE"))?;
    m.add("net.download", download)?;
    m.add("net.tcp_check", tcp_check)?;
    m.add("net.resolve", resolve)?;
    m.aliases(&[
        ("http_get", "get"),
        ("http_post", "post"),
        ("http_put", "put"),
        ("http_delete", "delete"),
        ("port_open", "tcp_check"),
        ("dns_lookup", "resolve"),
    ])?;
    Ok(m.into_table())
}

/// `net.get(url, opts)`, `net.post(url, body, opts)`, `net.put(url, body,
/// opts)`, `net.delete(url, opts)`: a table body is sent as JSON; the
/// answer `{status, body, headers}` also has `json` when it is JSON.
fn request(lua: &Lua, ctx: &RunCtx, args: Args, method: &'static str) -> mlua::Result<Table> {
    let url = args.string(1, "url")?;
    let with_body = matches!(method, "POST" | "PUT");
    let (body, json, opts_at) = if with_body {
        match args.get(2) {
            Value::Nil => (Some(Vec::new()), false, 3),
            Value::String(s) => (Some(s.as_bytes().to_vec()), false, 3),
            v @ Value::Table(_) => {
                let json: serde_json::Value = lua.from_value(v).map_err(|e| {
                    args.fail(format!("argument 2 (body) cannot be encoded as JSON: {e}"))
                })?;
                (Some(json.to_string().into_bytes()), true, 3)
            }
            other => {
                return Err(args.fail(format!(
                    "argument 2 (body) must be a string or a table, got {}",
                    type_name(&other)
                )));
            }
        }
    } else {
        (None, false, 2)
    };
    let opts = args.opt_table(opts_at, "options")?;
    let answer = if json {
        // The JSON content type unless the caller set one.
        let opts = match &opts {
            Some(o) => o.clone(),
            None => lua.create_table()?,
        };
        let headers = match opts.get::<Value>("headers")? {
            Value::Table(h) => h,
            _ => lua.create_table()?,
        };
        let has_type = headers
            .pairs::<String, Value>()
            .filter_map(Result::ok)
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if !has_type {
            headers.set("Content-Type", "application/json")?;
        }
        opts.set("headers", headers)?;
        http::call(lua, ctx, args.func(), method, url, body, Some(&opts))?
    } else {
        http::call(lua, ctx, args.func(), method, url, body, opts.as_ref())?
    };
    let is_json = answer
        .get::<Table>("headers")?
        .get::<Option<String>>("content-type")?
        .is_some_and(|t| t.contains("json"));
    if is_json {
        let text: mlua::String = answer.get("body")?;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&text.as_bytes()) {
            answer.set("json", lua.to_value(&value)?)?;
        }
    }
    Ok(answer)
}

/// `net.download(url, dest, {sha256, timeout, headers})`: unchanged when
/// dest already has the expected sha256; a body whose sha256 differs is
/// refused and dest left as it was.
fn download(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let url = args.string(1, "url")?;
    let dest = ctx.path(&args.string(2, "dest")?);
    let opts = args.options(3, &["sha256", "timeout", "headers"])?;
    let want = opt_string_field(args.func(), opts.as_ref(), "sha256")?
        .map(|s| s.trim().to_ascii_lowercase());
    if let Some(want) = &want
        && (want.len() != 64 || !want.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(args.fail("option sha256 must be 64 hexadecimal digits"));
    }
    let timeout = opt_seconds(args.func(), opts.as_ref(), "timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    let headers = opt_string_map(args.func(), opts.as_ref(), "headers")?;
    let done = |changed: bool, sum: Option<String>| -> mlua::Result<Table> {
        let t = result(lua, ctx, changed)?;
        t.set("path", dest.to_string_lossy().into_owned())?;
        t.set("sha256", sum)?;
        Ok(t)
    };
    let current = std::fs::read(&dest).ok().map(|b| sha256_hex(&b));
    if let (Some(want), Some(have)) = (&want, &current)
        && want == have
    {
        return done(false, current);
    }
    if ctx.check_mode {
        return done(true, want);
    }
    let answer = http::fetch(
        ctx,
        args.func(),
        Request {
            method: "GET",
            url: url.clone(),
            body: None,
            headers,
            timeout,
        },
    )?;
    if !(200..300).contains(&answer.status) {
        return Err(args.fail(format!("GET {url}: status {}", answer.status)));
    }
    let got = sha256_hex(&answer.body);
    if let Some(want) = &want
        && *want != got
    {
        return Err(args.fail(format!(
            "GET {url}: sha256 {got} is not the expected {want}; {} was left as it was",
            dest.display()
        )));
    }
    if current.as_deref() == Some(got.as_str()) {
        return done(false, Some(got));
    }
    // Written beside dest, then renamed: dest is never half written.
    let partial = dest.with_extension("sloth-download");
    std::fs::write(&partial, &answer.body)
        .and_then(|()| std::fs::rename(&partial, &dest))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            args.fail(format!("cannot write {}: {e}", dest.display()))
        })?;
    done(true, Some(got))
}

fn port_arg(args: &Args, n: usize) -> mlua::Result<u16> {
    match args.get(n) {
        Value::Integer(i) if (1..=65535).contains(&i) => Ok(i as u16),
        Value::String(s) if s.to_str()?.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(s.to_str()?.parse::<u16>().unwrap_or_default())
        }
        other => Err(args.fail(format!(
            "argument {n} (port) must be a port number 1-65535, got {}",
            match other {
                Value::Integer(i) => i.to_string(),
                other => type_name(&other).to_string(),
            }
        ))),
    }
}

/// The addresses of `host` (port `port`), resolved on a thread.
fn lookup(ctx: &RunCtx, func: &str, host: &str, port: u16) -> mlua::Result<Vec<SocketAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = format!("{host}:{port}");
    let host_for_thread = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        target.clone()
    };
    std::thread::spawn(move || {
        let _ = tx.send(
            host_for_thread
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>()),
        );
    });
    ctx.ctl
        .wait(&rx)?
        .map_err(|e| super::fail(func, format!("cannot resolve {host}: {e}")))
}

/// True when a TCP connection to `host:port` opens within `timeout`.
pub(super) fn tcp_open(
    ctx: &RunCtx,
    func: &str,
    host: &str,
    port: u16,
    timeout: Duration,
) -> mlua::Result<bool> {
    let Ok(addresses) = lookup(ctx, func, host, port) else {
        return Ok(false);
    };
    for address in addresses {
        ctx.ctl.checked()?;
        if TcpStream::connect_timeout(&address, timeout.min(CHECK_TIMEOUT * 6)).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `net.tcp_check(host, port, [timeout = 5])`: true when it connects.
fn tcp_check(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let host = args.string(1, "host")?;
    let port = port_arg(&args, 2)?;
    let timeout = match args.get(3) {
        Value::Nil => CHECK_TIMEOUT,
        _ => args.seconds(3, "timeout")?,
    };
    tcp_open(
        ctx,
        args.func(),
        &host,
        port,
        timeout.max(Duration::from_millis(1)),
    )
}

/// `net.resolve(host)`: its addresses, as text, without duplicates.
fn resolve(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let host = args.string(1, "host")?;
    if host.is_empty() {
        return Err(args.fail("argument 1 (host) must not be empty"));
    }
    let mut ips: Vec<String> = lookup(ctx, args.func(), &host, 0)?
        .into_iter()
        .map(|a| a.ip().to_string())
        .collect();
    ips.dedup();
    let mut seen = std::collections::BTreeSet::new();
    ips.retain(|ip| seen.insert(ip.clone()));
    lua.create_sequence_from(ips)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::super::test_http::{Reply, serve};
    use super::super::testing::{assert_errors, state};
    use super::*;

    /// Answers each request with JSON `{"method": M, "body": B}`, and
    /// `/file` with "payload".
    fn server() -> String {
        let address = serve(|request| {
            if request.path == "/file" {
                return Some(Reply {
                    headers: vec!["content-type: text/plain".into()],
                    ..Reply::ok("payload")
                });
            }
            let json = request.header("content-type") == Some("application/json");
            let body = serde_json::json!({
                "method": request.method,
                "json": json,
                "body": String::from_utf8_lossy(&request.body),
            });
            Some(Reply {
                headers: vec!["content-type: application/json".into()],
                ..Reply::ok(body.to_string())
            })
        });
        format!("http://{address}")
    }

    #[test]
    fn json_requests_downloads_tcp_and_dns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let base = server();
        let port = base.rsplit(':').next().expect("port").to_string();
        lua.globals().set("base", base).expect("set");
        lua.globals().set("port", port).expect("set");
        lua.globals()
            .set("sum", sha256_hex(b"payload"))
            .expect("set");
        lua.load(
            r#"
            local r = net.post(base .. "/x", {a = 1})
            assert(r.status == 200 and r.json.method == "POST" and r.json.json == true, r.body)
            assert(r.json.body == '{"a":1}', r.json.body)
            assert(net.put(base, "raw").json.method == "PUT")
            assert(net.delete(base).json.method == "DELETE")
            assert(net.get(base).json.method == "GET")
            local d = net.download(base .. "/file", "f.bin", {sha256 = sum})
            assert(d.changed == true and d.sha256 == sum)
            assert(net.download(base .. "/file", "f.bin", {sha256 = sum}).changed == false)
            local ok, err = pcall(net.download, base .. "/file", "g.bin", {sha256 = string.rep("0", 64)})
            assert(not ok and tostring(err):find("is not the expected"), tostring(err))
            assert(not fs.exists("g.bin"))
            assert(net.tcp_check("127.0.0.1", tonumber(port)) == true)
            local ips = net.resolve("localhost")
            local found = false
            for _, ip in ipairs(ips) do if ip == "127.0.0.1" or ip == "::1" then found = true end end
            assert(found, table.concat(ips, ","))
            "#,
        )
        .exec()
        .expect("net");
        // A port nobody listens on: bind one, then free it.
        let free = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let open: bool = lua
            .load(format!("return net.tcp_check('127.0.0.1', {free}, 2)"))
            .eval()
            .expect("closed port");
        assert!(!open);
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "net.get()",
                "net.get: argument 1 (url) must be a string, got nil",
            ),
            (
                "net.get('ftp://x')",
                "net.get: argument 1 (url) \"ftp://x\" must start with http://",
            ),
            (
                "net.post('http://x', true)",
                "net.post: argument 2 (body) must be a string or a table, got boolean",
            ),
            (
                "net.post('http://x', {f = print})",
                "net.post: argument 2 (body) cannot be encoded as JSON",
            ),
            (
                "net.download('http://x')",
                "net.download: argument 2 (dest) must be a string",
            ),
            (
                "net.download('http://x', 'd', {sha256 = 'abc'})",
                "net.download: option sha256 must be 64 hexadecimal digits",
            ),
            (
                "net.download('http://x', 'd', {md5 = 'abc'})",
                "net.download: unknown option \"md5\"",
            ),
            (
                "net.tcp_check('h')",
                "net.tcp_check: argument 2 (port) must be a port number 1-65535, got nil",
            ),
            (
                "net.tcp_check('h', 70000)",
                "net.tcp_check: argument 2 (port) must be a port number 1-65535, got 70000",
            ),
            (
                "net.resolve('')",
                "net.resolve: argument 1 (host) must not be empty",
            ),
            (
                "net.resolve('no-such-host.invalid')",
                "net.resolve: cannot resolve no-such-host.invalid",
            ),
        ]);
    }
}
