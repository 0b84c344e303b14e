//! Object names derived from names as authors write them.
//!
//! A workflow file says `workflow.define("CI_Pipeline")` and
//! `task("Build_App")`; object names must be lowercase RFC 1123. The
//! mapping is deterministic so that slothctl, the controllers and the
//! agent agree without talking: lowercase, anything but `[a-z0-9-]`
//! becomes `-`, and a short hash of the written name is appended when the
//! result would collide with another name of the same set or is too long.
//! A name that is already valid is kept as it is.

/// Characters of the hash suffix (hex of a 32-bit FNV-1a).
const HASH_LEN: usize = 6;

/// The lowercase, dash-separated form of `name`, without edge dashes.
pub fn slug(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_matches('-').to_string()
}

/// A short, stable hash of `name` (FNV-1a; no dependency, same on every
/// platform and version).
fn short_hash(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")[..HASH_LEN].to_string()
}

/// The object name of `name`, at most `max_len` characters, among the
/// names `others` of the same set (which may include `name` itself).
pub fn object_name<'a>(
    name: &str,
    max_len: usize,
    others: impl IntoIterator<Item = &'a str>,
) -> String {
    let slug = slug(name);
    if slug == name && slug.len() <= max_len {
        return slug;
    }
    let collides = slug.is_empty()
        || slug.len() > max_len
        || others
            .into_iter()
            .any(|other| other != name && self::slug(other) == slug);
    if !collides {
        return slug;
    }
    let keep = max_len.saturating_sub(HASH_LEN + 1);
    let mut stem = slug[..slug.len().min(keep)]
        .trim_end_matches('-')
        .to_string();
    if stem.is_empty() {
        stem.push('x');
    }
    format!("{stem}-{}", short_hash(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_kept_and_others_lowercased_and_dashed() {
        assert_eq!(object_name("build", 63, ["build"]), "build");
        assert_eq!(object_name("Build_App", 63, ["Build_App"]), "build-app");
        assert_eq!(object_name("ci.pipeline", 63, []), "ci-pipeline");
        assert_eq!(object_name("_x_", 63, []), "x");
    }

    #[test]
    fn collisions_and_long_names_get_a_stable_hash_suffix() {
        let set = ["Build_App", "build-app", "BUILD_APP"];
        assert_eq!(object_name("build-app", 63, set), "build-app");
        let a = object_name("Build_App", 63, set);
        let b = object_name("BUILD_APP", 63, set);
        assert!(
            a.starts_with("build-app-") && a.len() == "build-app-".len() + 6,
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(a, object_name("Build_App", 63, set), "deterministic");
        let long = "A".repeat(80);
        let name = object_name(&long, 63, []);
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.starts_with("aaaa"), "{name}");
        assert!(object_name("___", 63, []).starts_with("x-"));
    }
}
