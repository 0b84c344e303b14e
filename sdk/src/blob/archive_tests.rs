use std::os::unix::fs::PermissionsExt;

use super::*;

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A tar with one entry whose name is written raw (bypassing the tar
/// crate's own checks), as a hostile client would.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn raw_tar(name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    let field = &mut header.as_old_mut().name;
    field[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        let field = &mut header.as_old_mut().linkname;
        field[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn a_workspace_round_trips_with_modes_and_ignores() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = tmp.path().join("ws");
    write(&ws.join("data.txt"), "hello");
    write(&ws.join("nested/deep/file.txt"), "deep");
    write(&ws.join("run.sh"), "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(ws.join("run.sh"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    write(&ws.join("big/blob.bin"), "ignored");
    write(&ws.join(".git/HEAD"), "ref: x");
    write(&ws.join(".slothignore"), "big/\n*.log\n");
    write(&ws.join("debug.log"), "ignored too");
    std::os::unix::fs::symlink("data.txt", ws.join("link")).expect("symlink");

    let archive = tmp.path().join("ws.tar.zst");
    let packed = pack_workspace(&ws, &archive).expect("pack");
    let again = pack_workspace(&ws, &tmp.path().join("again.tar.zst")).expect("pack again");
    assert_eq!(packed.digest, again.digest, "packing is deterministic");
    assert_eq!(digest_file(&archive).expect("digest").0, packed.digest);

    let out = tmp.path().join("out");
    unpack(&archive, &out).expect("unpack");
    assert_eq!(read(&out.join("data.txt")), "hello");
    assert_eq!(read(&out.join("nested/deep/file.txt")), "deep");
    let mode = std::fs::metadata(out.join("run.sh"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    assert_eq!(
        std::fs::read_link(out.join("link")).expect("link"),
        Path::new("data.txt")
    );
    assert!(!out.join("big").exists(), "ignored directory delivered");
    assert!(!out.join("debug.log").exists(), "ignored file delivered");
    assert!(!out.join(".git").exists(), ".git delivered");
}

#[test]
fn an_artifact_path_is_packed_alone_and_copied_back_selectively() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("run");
    write(&root.join("dist/app.bin"), "binary");
    write(&root.join("dist/lib/x.so"), "lib");
    write(&root.join("other.txt"), "not packed");
    let archive = tmp.path().join("a.tar.zst");
    pack_path(&root, "dist/", &archive).expect("pack");
    let names = list(&archive).expect("list");
    assert!(names.iter().all(|n| n.starts_with("dist")), "{names:?}");

    let file = tmp.path().join("copied.bin");
    unpack_selected(&archive, Some("dist/app.bin"), &file).expect("cp file");
    assert_eq!(read(&file), "binary");
    let dir = tmp.path().join("copied");
    unpack_selected(&archive, Some("dist"), &dir).expect("cp dir");
    assert_eq!(read(&dir.join("lib/x.so")), "lib");
    assert!(matches!(
        unpack_selected(&archive, Some("nope"), &tmp.path().join("n")),
        Err(ArchiveError::Missing(_))
    ));
}

#[test]
fn hostile_archives_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cases = [
        raw_tar("../escape.txt", tar::EntryType::Regular, None, b"x"),
        raw_tar("/tmp/absolute.txt", tar::EntryType::Regular, None, b"x"),
        raw_tar("a/../../up.txt", tar::EntryType::Regular, None, b"x"),
        raw_tar("out", tar::EntryType::Symlink, Some("/etc"), b""),
        raw_tar("out", tar::EntryType::Symlink, Some("../../etc"), b""),
        raw_tar("dev", tar::EntryType::Char, None, b""),
    ];
    for (i, tar_bytes) in cases.iter().enumerate() {
        let archive = tmp.path().join(format!("{i}.tar.zst"));
        compress(tar_bytes, &archive).expect("compress");
        let dest = tmp.path().join(format!("dest{i}"));
        let result = unpack(&archive, &dest);
        assert!(
            matches!(result, Err(ArchiveError::Unsafe { .. })),
            "case {i}: {result:?}"
        );
    }
    assert!(!tmp.path().join("escape.txt").exists());
    assert!(!Path::new("/tmp/absolute.txt").exists());
}

#[test]
fn writing_through_a_planted_link_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut tar_bytes = raw_tar("sub", tar::EntryType::Symlink, Some("."), b"");
    tar_bytes.truncate(tar_bytes.len() - 1024);
    tar_bytes.extend(raw_tar("sub/x.txt", tar::EntryType::Regular, None, b"x"));
    let archive = tmp.path().join("a.tar.zst");
    compress(&tar_bytes, &archive).expect("compress");
    let result = unpack(&archive, &tmp.path().join("dest"));
    assert!(
        matches!(result, Err(ArchiveError::Unsafe { .. })),
        "{result:?}"
    );
}

#[test]
fn a_truncated_archive_is_corrupt() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = tmp.path().join("ws");
    write(&ws.join("data.txt"), &"0123456789".repeat(10_000));
    let archive = tmp.path().join("ws.tar.zst");
    pack_workspace(&ws, &archive).expect("pack");
    let bytes = std::fs::read(&archive).expect("read");
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).expect("truncate");
    let result = unpack(&archive, &tmp.path().join("out"));
    assert!(
        matches!(result, Err(ArchiveError::Corrupt(_))),
        "{result:?}"
    );
}
