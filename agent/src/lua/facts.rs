//! `facts`: what the machine is — host names, OS, kernel, CPUs, memory,
//! mounts, network interfaces, uptime, load and the current user — read
//! from /proc, /sys, /etc/os-release and system calls, never by running a
//! program.

use std::collections::BTreeMap;
use std::rc::Rc;

use mlua::{Lua, Table};

use super::{Args, ModuleTable, RunCtx};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "facts")?;
    m.add("facts.all", all)?;
    m.add("facts.hostname", |_, _, _| Ok(hostname()))?;
    m.add("facts.fqdn", |_, _, _| Ok(fqdn()))?;
    m.add("facts.os", os)?;
    m.add("facts.kernel", kernel)?;
    m.add("facts.arch", |_, _, _| Ok(uname().2))?;
    m.add("facts.cpus", cpus)?;
    m.add("facts.memory", memory)?;
    m.add("facts.disks", disks)?;
    m.add("facts.network", network)?;
    m.add("facts.uptime", |_, _, _| Ok(uptime()))?;
    m.add("facts.load", load)?;
    m.add("facts.user", user)?;
    // sloth-runner's names.
    m.aliases(&[
        ("gather", "all"),
        ("get_all", "all"),
        ("get_hostname", "hostname"),
        ("get_os", "os"),
        ("get_memory", "memory"),
        ("get_cpu", "cpus"),
        ("get_network", "network"),
        ("get_disk", "disks"),
    ])?;
    Ok(m.into_table())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// (sysname, release, machine), as `uname -s -r -m` prints them.
fn uname() -> (String, String, String) {
    match nix::sys::utsname::uname() {
        Ok(u) => (
            u.sysname().to_string_lossy().into_owned(),
            u.release().to_string_lossy().into_owned(),
            u.machine().to_string_lossy().into_owned(),
        ),
        Err(_) => (
            "Linux".into(),
            read("/proc/sys/kernel/osrelease").trim().to_string(),
            std::env::consts::ARCH.into(),
        ),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| read("/proc/sys/kernel/hostname").trim().to_string())
}

/// The host name with its domain: from /etc/hosts when a line names the
/// host with a dotted name, else the kernel's domain name, else the host name.
fn fqdn() -> String {
    let host = hostname();
    if host.contains('.') {
        return host;
    }
    for line in read("/etc/hosts").lines() {
        let names: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect();
        if names.contains(&host.as_str())
            && let Some(full) = names.iter().find(|n| n.starts_with(&format!("{host}.")))
        {
            return full.to_string();
        }
    }
    let domain = read("/proc/sys/kernel/domainname").trim().to_string();
    if domain.is_empty() || domain == "(none)" {
        host
    } else {
        format!("{host}.{domain}")
    }
}

/// `KEY=value` lines of /etc/os-release, unquoted.
pub(super) fn os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// `{name, id, version, pretty_name, family ("linux")}`.
fn os(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    let release = os_release(&{
        let text = read("/etc/os-release");
        if text.is_empty() {
            read("/usr/lib/os-release")
        } else {
            text
        }
    });
    let t = lua.create_table()?;
    let get = |k: &str| release.get(k).cloned().unwrap_or_default();
    t.set("name", get("NAME"))?;
    t.set("id", get("ID"))?;
    t.set("version", get("VERSION_ID"))?;
    t.set("pretty_name", get("PRETTY_NAME"))?;
    t.set("id_like", get("ID_LIKE"))?;
    t.set("family", std::env::consts::OS)?;
    Ok(t)
}

/// `{name ("Linux"), release, version}`.
fn kernel(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    let (name, release, _) = uname();
    let t = lua.create_table()?;
    t.set("name", name)?;
    t.set("release", release)?;
    t.set(
        "version",
        read("/proc/sys/kernel/version").trim().to_string(),
    )?;
    Ok(t)
}

/// `{count, model}` from /proc/cpuinfo.
fn cpus(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    let info = read("/proc/cpuinfo");
    let count = info
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    let count = if count == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        count
    };
    let model = info
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let t = lua.create_table()?;
    t.set("count", count)?;
    t.set("model", model)?;
    Ok(t)
}

/// The kB fields of /proc/meminfo, in bytes.
pub(super) fn meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            let scale = if parts.next() == Some("kB") { 1024 } else { 1 };
            Some((key.to_string(), n * scale))
        })
        .collect()
}

/// `{total, available, free, swap_total, swap_free}` in bytes.
fn memory(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    let info = meminfo(&read("/proc/meminfo"));
    let t = lua.create_table()?;
    for (key, field) in [
        ("total", "MemTotal"),
        ("available", "MemAvailable"),
        ("free", "MemFree"),
        ("swap_total", "SwapTotal"),
        ("swap_free", "SwapFree"),
    ] {
        t.set(key, info.get(field).copied().unwrap_or_default())?;
    }
    Ok(t)
}

/// Mounts of real file systems from /proc/mounts: `{device, mount,
/// fstype, total, free, available}` (sizes in bytes).
fn disks(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    const VIRTUAL: &[&str] = &[
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "mqueue",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "autofs",
        "hugetlbfs",
        "binfmt_misc",
        "nsfs",
        "devtmpfs",
    ];
    let list = lua.create_table()?;
    for line in read("/proc/mounts").lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [device, mount, fstype, ..] = fields[..] else {
            continue;
        };
        if VIRTUAL.contains(&fstype) {
            continue;
        }
        // Spaces in mount points are written \040.
        let mount = mount.replace("\\040", " ");
        let t = lua.create_table()?;
        t.set("device", device)?;
        t.set("mount", mount.as_str())?;
        t.set("fstype", fstype)?;
        if let Ok(s) = nix::sys::statvfs::statvfs(mount.as_str()) {
            let unit = s.fragment_size();
            t.set("total", s.blocks() * unit)?;
            t.set("free", s.blocks_free() * unit)?;
            t.set("available", s.blocks_available() * unit)?;
        }
        list.push(t)?;
    }
    Ok(list)
}

/// Interfaces by name: `{mac, mtu, up, addresses = {"10.0.0.2", ...}}`.
fn network(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    let mut addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(list) = nix::ifaddrs::getifaddrs() {
        for entry in list {
            let Some(address) = entry.address else {
                continue;
            };
            let text = if let Some(v4) = address.as_sockaddr_in() {
                v4.ip().to_string()
            } else if let Some(v6) = address.as_sockaddr_in6() {
                v6.ip().to_string()
            } else {
                continue;
            };
            addresses
                .entry(entry.interface_name)
                .or_default()
                .push(text);
        }
    }
    let t = lua.create_table()?;
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.extend(addresses.keys().cloned());
    names.sort();
    names.dedup();
    for name in names {
        let sys = |file: &str| {
            read(&format!("/sys/class/net/{name}/{file}"))
                .trim()
                .to_string()
        };
        let i = lua.create_table()?;
        i.set("mac", sys("address"))?;
        i.set("mtu", sys("mtu").parse::<u32>().ok())?;
        i.set("up", sys("operstate") == "up" || name == "lo")?;
        i.set(
            "addresses",
            lua.create_sequence_from(addresses.remove(&name).unwrap_or_default())?,
        )?;
        t.set(name, i)?;
    }
    Ok(t)
}

/// Seconds since boot.
fn uptime() -> f64 {
    read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

/// `{one, five, fifteen}` from /proc/loadavg.
fn load(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    let text = read("/proc/loadavg");
    let values: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|s| s.parse().unwrap_or_default())
        .collect();
    let t = lua.create_table()?;
    for (i, key) in ["one", "five", "fifteen"].iter().enumerate() {
        t.set(*key, values.get(i).copied().unwrap_or_default())?;
    }
    Ok(t)
}

/// `{name, uid, gid, home}` of the agent's user.
fn user(lua: &Lua, _: &RunCtx, _: Args) -> mlua::Result<Table> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let t = lua.create_table()?;
    t.set("uid", uid.as_raw())?;
    t.set("gid", gid.as_raw())?;
    if let Ok(Some(u)) = nix::unistd::User::from_uid(uid) {
        t.set("name", u.name)?;
        t.set("home", u.dir.to_string_lossy().into_owned())?;
    }
    Ok(t)
}

/// Every fact in one table.
fn all(lua: &Lua, ctx: &RunCtx, _: Args) -> mlua::Result<Table> {
    let none = || Args::new("facts.all", mlua::MultiValue::new());
    let t = lua.create_table()?;
    t.set("hostname", hostname())?;
    t.set("fqdn", fqdn())?;
    t.set("os", os(lua, ctx, none())?)?;
    t.set("kernel", kernel(lua, ctx, none())?)?;
    t.set("arch", uname().2)?;
    t.set("cpus", cpus(lua, ctx, none())?)?;
    t.set("memory", memory(lua, ctx, none())?)?;
    t.set("disks", disks(lua, ctx, none())?)?;
    t.set("network", network(lua, ctx, none())?)?;
    t.set("uptime", uptime())?;
    t.set("load", load(lua, ctx, none())?)?;
    t.set("user", user(lua, ctx, none())?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testing::state;
    use super::*;

    #[test]
    fn parsers() {
        let r = os_release("NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID='12'\n# c\n");
        assert_eq!(r.get("NAME").map(String::as_str), Some("Debian GNU/Linux"));
        assert_eq!(r.get("VERSION_ID").map(String::as_str), Some("12"));
        let m = meminfo("MemTotal:       16 kB\nHugePages_Total:   3\n");
        assert_eq!(m.get("MemTotal"), Some(&16384));
        assert_eq!(m.get("HugePages_Total"), Some(&3));
    }

    #[test]
    fn facts_match_the_machine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let (host, cpus, total, kernel, lo): (String, usize, u64, String, bool) = lua
            .load(
                r#"local f = facts.all()
                   assert(f.uptime > 0 and f.load.one >= 0 and #f.disks > 0 and f.user.uid >= 0)
                   assert(f.os.family == "linux")
                   local lo = f.network.lo
                   local has = false
                   for _, a in ipairs(lo and lo.addresses or {}) do if a == "127.0.0.1" then has = true end end
                   return facts.hostname(), f.cpus.count, f.memory.total, f.kernel.release, has"#,
            )
            .eval()
            .expect("facts");
        assert_eq!(host, read("/proc/sys/kernel/hostname").trim());
        assert_eq!(kernel, read("/proc/sys/kernel/osrelease").trim());
        assert!(cpus >= 1 && total > 0);
        assert!(lo, "loopback has 127.0.0.1");
    }
}
