use super::super::Output;
use super::super::testing::{assert_error, state};
use super::edit::*;
use super::*;

fn lines(text: &str) -> Vec<String> {
    split_lines(text)
}

#[test]
fn line_edits_follow_lineinfile() {
    let re = regex::Regex::new("^port=").expect("regex");
    let base = lines("a\nport=80\nb");
    assert_eq!(
        edit_lines(&base, Some("port=8080"), Some(&re), true),
        lines("a\nport=8080\nb")
    );
    assert_eq!(
        edit_lines(&base, Some("c"), None, true),
        lines("a\nport=80\nb\nc")
    );
    assert_eq!(edit_lines(&base, Some("a"), None, true), base);
    assert_eq!(edit_lines(&base, None, Some(&re), false), lines("a\nb"));
    assert_eq!(
        edit_lines(&base, Some("b"), None, false),
        lines("a\nport=80")
    );
    let block = edit_block("x\n", "# BEGIN", "# END", Some("one\ntwo"));
    assert_eq!(block, "x\n# BEGIN\none\ntwo\n# END\n");
    assert_eq!(
        edit_block(&block, "# BEGIN", "# END", Some("three")),
        "x\n# BEGIN\nthree\n# END\n"
    );
    assert_eq!(edit_block(&block, "# BEGIN", "# END", None), "x\n");
}

const SCRIPT: &str = r#"
    local changes = {}
    local function note(name, r) changes[#changes + 1] = name .. "=" .. tostring(r.changed) end
    note("mkdir", file_ops.mkdir("site/conf", {mode = "0750"}))
    note("write", file_ops.write("site/conf/motd", "hello\n", {mode = "0640"}))
    note("line", file_ops.line_in_file("site/conf/app.conf", {regexp = "^port=", line = "port=8080"}))
    note("line_absent", file_ops.lineinfile("site/conf/app.conf", {regexp = "^name=", state = "absent"}))
    note("block", file_ops.block_in_file("site/conf/app.conf", {block = "a=1\nb=2"}))
    note("replace", file_ops.replace("site/conf/app.conf", "(?m)^#(listen)=", "$1="))
    file_ops.write("tpl", "listen {{ port }}\n")
    note("template", file_ops.template("tpl", "site/conf/listen.conf", {port = 8080}))
    note("copy", file_ops.copy("site/conf/listen.conf", "site/listen.copy"))
    note("chmod", file_ops.chmod("site/listen.copy", "0600"))
    note("remove", file_ops.remove("site/gone"))
    return table.concat(changes, ",")
"#;

/// The configuration file the script edits.
fn seed(dir: &Path) {
    std::fs::create_dir_all(dir.join("site/conf")).expect("mkdir");
    std::fs::write(
        dir.join("site/conf/app.conf"),
        "port=80\nname=x\n#listen=all\n",
    )
    .expect("write");
}

#[test]
fn a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lua, _ctx) = state(dir.path());
    seed(dir.path());
    let first: String = lua.load(SCRIPT).eval().expect("first run");
    assert_eq!(
        first,
        "mkdir=true,write=true,line=true,line_absent=true,block=true,replace=true,template=true,copy=true,chmod=true,remove=false"
    );
    let conf = std::fs::read_to_string(dir.path().join("site/conf/app.conf")).expect("read");
    assert_eq!(
        conf,
        "port=8080\nlisten=all\n# BEGIN SLOTH MANAGED BLOCK\na=1\nb=2\n# END SLOTH MANAGED BLOCK\n"
    );
    let second: String = lua.load(SCRIPT).eval().expect("second run");
    assert!(!second.contains("=true"), "{second}");
    let meta = std::fs::metadata(dir.path().join("site/listen.copy")).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let facts: (bool, String, i64, String) = lua
        .load(
            r#"local s = file_ops.stat("site/listen.copy")
                 return s.is_file, s.mode, s.size, file_ops.checksum("site/listen.copy")"#,
        )
        .eval()
        .expect("stat");
    assert!(facts.0);
    assert_eq!(facts.1, "0600");
    assert_eq!(facts.2, 12);
    assert_eq!(facts.3, sha256_hex(b"listen 8080\n"));
}

/// Every file under `dir` with its content and mode.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("ls") {
            let path = entry.expect("entry").path();
            let meta = std::fs::metadata(&path).expect("stat");
            if meta.is_dir() {
                stack.push(path.clone());
                all.push((path, Vec::new(), meta.mode()));
            } else {
                all.push((
                    path.clone(),
                    std::fs::read(&path).expect("read"),
                    meta.mode(),
                ));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn check_mode_reports_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    seed(dir.path());
    std::fs::write(dir.path().join("tpl"), "listen {{ port }}\n").expect("write");
    let out = Output::open(&dir.path().join("output.log")).expect("output");
    let mut ctx = RunCtx::new(
        dir.path().to_path_buf(),
        out,
        super::super::Ctl::new(None, None),
    );
    ctx.check_mode = true;
    let ctx = Rc::new(ctx);
    let lua = Lua::new();
    super::super::install(&lua, &ctx).expect("install");
    // Without the copy of the file that only the template would have made.
    let script: String = SCRIPT
        .lines()
        .filter(|l| !l.contains("listen.copy"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("site/gone"), "x").expect("write");
    let before = snapshot(dir.path());
    let out: String = lua.load(&script).eval().expect("check run");
    assert_eq!(
        out,
        "mkdir=true,write=true,line=true,line_absent=true,block=true,replace=true,template=true,remove=true"
    );
    let flagged: bool = lua
        .load("return file_ops.write('x', 'y').check_mode")
        .eval()
        .expect("flag");
    assert!(flagged);
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn unarchive_tar_gz_and_zip_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lua, _ctx) = state(dir.path());
    std::fs::create_dir_all(dir.path().join("src/sub")).expect("mkdir");
    std::fs::write(dir.path().join("src/a.txt"), "a").expect("write");
    std::fs::write(dir.path().join("src/sub/b.txt"), "b").expect("write");
    let status = std::process::Command::new("tar")
        .args(["-czf", "a.tar.gz", "-C", "src", "."])
        .current_dir(dir.path())
        .status()
        .expect("tar");
    assert!(status.success());
    let (first, second): (bool, bool) = lua
        .load(r#"return file_ops.unarchive("a.tar.gz", "out").changed, file_ops.unarchive("a.tar.gz", "out").changed"#)
        .eval()
        .expect("unarchive");
    assert!(first && !second);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/sub/b.txt")).expect("read"),
        "b"
    );
    if tools::find_program(
        &RunCtx::new(
            dir.path().into(),
            super::super::Output::open(&dir.path().join("o")).expect("o"),
            super::super::Ctl::new(None, None),
        ),
        "zip",
    )
    .is_some()
    {
        let status = std::process::Command::new("zip")
            .args(["-qr", "../a.zip", "."])
            .current_dir(dir.path().join("src"))
            .status()
            .expect("zip");
        assert!(status.success());
        let (first, second): (bool, bool) = lua
            .load(r#"return file_ops.unarchive("a.zip", "z").changed, file_ops.unarchive("a.zip", "z").changed"#)
            .eval()
            .expect("unzip");
        assert!(first && !second);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("z/a.txt")).expect("read"),
            "a"
        );
    }
}

#[test]
fn bad_arguments_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lua, _ctx) = state(dir.path());
    std::fs::write(dir.path().join("f"), "x\n").expect("write");
    std::fs::write(dir.path().join("a.rar"), "x").expect("write");
    for (code, want) in [
        (
            "file_ops.copy()",
            "file_ops.copy: argument 1 (src) must be a string, got nil",
        ),
        (
            "file_ops.copy('missing', 'b')",
            "file_ops.copy: cannot read",
        ),
        (
            "file_ops.copy('f', 'g', {mode = 'rw'})",
            "file_ops.copy: option mode must be an octal mode",
        ),
        (
            "file_ops.copy('f', 'g', {owner = 'x'})",
            "file_ops.copy: unknown option \"owner\"",
        ),
        ("file_ops.move('m1', 'm2')", "file_ops.move: neither"),
        (
            "file_ops.chmod('f')",
            "file_ops.chmod: argument 2 (mode) must be an octal string",
        ),
        ("file_ops.chmod('missing', '0644')", "file_ops.chmod: "),
        (
            "file_ops.chown('f', 'no-such-user-x')",
            "file_ops.chown: argument 2 (owner): no user",
        ),
        (
            "file_ops.write('f')",
            "file_ops.write: argument 2 (content) must be a string, got nil",
        ),
        (
            "file_ops.line_in_file('f')",
            "file_ops.line_in_file: argument 2 (options) must be a table, got nil",
        ),
        (
            "file_ops.line_in_file('f', {regexp = '('})",
            "file_ops.line_in_file: option regexp is not a valid regex",
        ),
        (
            "file_ops.line_in_file('f', {})",
            "file_ops.line_in_file: option line is required",
        ),
        (
            "file_ops.line_in_file('f', {line = 'x', state = 'gone'})",
            "file_ops.line_in_file: option state must be",
        ),
        (
            "file_ops.line_in_file('nofile', {line = 'x', create = false})",
            "does not exist (option create is false)",
        ),
        (
            "file_ops.block_in_file('f', {})",
            "file_ops.block_in_file: option block is required",
        ),
        (
            "file_ops.block_in_file('f', {block = 'x', marker = '#'})",
            "file_ops.block_in_file: option marker must contain {mark}",
        ),
        (
            "file_ops.replace('f', '[', 'x')",
            "file_ops.replace: argument 2 (regexp) is not a valid regex",
        ),
        (
            "file_ops.template('missing', 'd')",
            "file_ops.template: cannot read",
        ),
        (
            "file_ops.template('f', 'd', 3)",
            "file_ops.template: argument 3 (vars) must be a table",
        ),
        ("file_ops.unarchive('a.rar', 'd')", "file_ops.unarchive: "),
        (
            "file_ops.unarchive('missing.tar', 'd')",
            "file_ops.unarchive: ",
        ),
        (
            "file_ops.checksum('f', 'md5')",
            "file_ops.checksum: argument 2 (algorithm) must be \"sha256\"",
        ),
        (
            "file_ops.stat(1)",
            "file_ops.stat: argument 1 (path) must be a string",
        ),
    ] {
        assert_error(&lua, code, want);
    }
    std::fs::write(dir.path().join("t"), "{{ nope }}").expect("write");
    assert_error(&lua, "file_ops.template('t', 'd', {})", "nope");
}
