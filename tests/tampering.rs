//! Projects that try to steer the node rather than escape it: make it
//! install and run their code outside the sandbox (a requirements file
//! changed by a run, linked to the node's config, naming local code), make it
//! open host files to later runs (a folder swapped with a link while runs
//! start), or make it believe results the tests never produced (a rewritten
//! or hijacked report, forged records, an early exit). Every one must leave
//! the node and the other projects exactly as honest runs would. As in
//! `tests/hostile.rs`, each test runs with the node as root and as an
//! ordinary user unless the attack only means something against root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::hostile::*;
use common::*;
use serde_json::json;

// ---------------------------------------------------------------- no code outside the sandbox

const ATTACKER_CONFTEST: &str = include_str!("data/hostile/install/attacker_conftest.py");
const RELINKER_CONFTEST: &str = include_str!("data/hostile/install/relinker_conftest.py");
const CLASSMATE_TESTS: &str = include_str!("data/hostile/install/test_classmate_grade.py");

/// Three projects: `attacker`, whose conftest plants a project with an
/// in-tree build backend and names it in requirements.txt; `classmate`,
/// whose failing test the backend rewrites to pass; `relinker`, whose
/// conftest makes requirements.txt a link to the node's config. The
/// attacker's name sorts first, so that with one slot its modules, and the
/// installs a node would run for them, come after the classmate's
/// collection and before its module.
fn install_projects(marker: &str, config: &Path) -> Vec<u8> {
    let config = config.display().to_string();
    let attacker = fill(ATTACKER_CONFTEST, &[("@MARKER@", marker), ("@CONFIG@", &config)]);
    let relinker = fill(RELINKER_CONFTEST, &[("@CONFIG@", &config)]);
    let mut files = under(
        "attacker",
        &[
            ("requirements.txt", ""),
            ("tests/conftest.py", attacker.as_str()),
            ("tests/test_one.py", PASS_1_FAIL_1),
            ("tests/test_two.py", PASS_1_FAIL_1),
            ("tests/test_three.py", PASS_1_FAIL_1),
        ],
    );
    files.extend(under("classmate", &[("requirements.txt", ""), ("tests/test_classmate_grade.py", CLASSMATE_TESTS)]));
    files.extend(under(
        "relinker",
        &[("requirements.txt", ""), ("tests/conftest.py", relinker.as_str()), ("tests/test_relinked.py", PASS)],
    ));
    zip_of(&files)
}

fn install_code_stays_in_the_sandbox(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let marker = format!("/tmp/evalmesh_install_marker_{}", uuid::Uuid::new_v4().simple());
        let config_file = dir.path().join("node.toml");
        let cfg = config(user, dir.path(), 62100, 1);
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());

        let id = node.submit_multipart("install.zip", &install_projects(&marker, &config_file));
        let e = finished(&node, &id);
        let planted = std::fs::read_to_string(&marker).ok();
        let _ = std::fs::remove_file(&marker);
        assert_eq!(planted, None, "the planted build backend ran on the host and wrote {marker}");
        assert_eq!(e["status"], json!("done"), "{e:#}");

        assert_project_ran(&e, "classmate");
        assert_module(&e, "classmate", "tests/test_classmate_grade.py", "done", [1, 1, 0, 0]);
        assert_project_ran(&e, "attacker");
        for name in ["tests/test_one.py", "tests/test_two.py", "tests/test_three.py"] {
            assert_module(&e, "attacker", name, "done", [1, 1, 0, 0]);
        }
        assert_project_ran(&e, "relinker");
        assert_module(&e, "relinker", "tests/test_relinked.py", "done", [1, 0, 0, 0]);
        assert_config_shows_nowhere(&node, &id);
        assert_runs_ended(&node, user, 62100, 1);
    });
}

for_each_user!(requirements_changed_by_a_run_are_never_installed, install_code_stays_in_the_sandbox);

/// A git repository whose requirements.txt is a symbolic link to the node's
/// config (the clone checks it out as a plain file holding the path), beside
/// an honest one.
fn symlinked_requirements(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let config_file = dir.path().join("node.toml");
        let repos = dir.path().join("repos");
        let linked = repos.join("linked");
        write_files(&linked, &[("tests/test_linked.py", PASS)]);
        std::os::unix::fs::symlink(&config_file, linked.join("requirements.txt")).unwrap();
        git(&linked, &["init", "-q"]);
        git(&linked, &["add", "-A"]);
        git(&linked, &["commit", "-q", "-m", "requirements are the node's config"]);
        git_repo(&repos.join("honest"), &[("requirements.txt", ""), ("tests/test_honest.py", PASS)]);
        if let Some(uid) = user.uid() {
            chown_tree(&repos, uid);
        }
        let cfg = config(user, dir.path(), 62150, 1).set("intake", "git_schemes", r#"["file"]"#);
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());

        let url = |name: &str| format!("file://{}", repos.join(name).display());
        let id = node.submit_json(&json!({ "projects": [url("linked"), url("honest")] }));
        let e = finished(&node, &id);
        assert_eq!(e["status"], json!("done"), "{e:#}");

        let p = &e["projects"]["linked"];
        let error = p["error"].as_str().unwrap_or_else(|| panic!("linked has no project error: {e:#}"));
        assert!(error.contains("requirements.txt"), "the error names requirements.txt: {error}");
        assert_eq!(outcome(p), [0, 0, 0, 0], "{p:#}");
        assert_eq!(p["nota"], json!(0.0), "{p:#}");

        assert_project_ran(&e, "honest");
        assert_module(&e, "honest", "tests/test_honest.py", "done", [1, 0, 0, 0]);
        assert_config_shows_nowhere(&node, &id);
    });
}

for_each_user!(symlinked_requirements_fail_their_project_and_show_nothing_of_the_target, symlinked_requirements);

const EVIL_BACKEND: &str = include_str!("data/hostile/install/backend.py");
const EVIL_PYPROJECT: &str = include_str!("data/hostile/install/pyproject.toml");

/// Requirement lines that name the project itself: skipped, the project
/// root being on sys.path anyway.
const OWN_LINES: [(&str, &str); 2] = [("dot", "."), ("dash_e_dot", "-e .")];

/// Requirement lines that name local code, a VCS, another index or another
/// file: each fails its project, with the line in the error.
const REFUSED_LINES: [(&str, &str); 13] = [
    ("relative", "./evil"),
    ("editable", "-e ./evil"),
    ("parent", "../evil"),
    ("absolute", "/usr/lib/python3/dist-packages"),
    ("file_url", "file:///usr/lib/python3/dist-packages"),
    ("vcs", "git+https://example.invalid/evil.git"),
    ("include", "-r /etc/passwd"),
    ("constraints", "-c /etc/passwd"),
    ("index", "-i https://example.invalid/simple"),
    ("index_url", "--index-url https://example.invalid/simple"),
    ("extra_index", "--extra-index-url https://example.invalid/simple"),
    ("find_links", "-f /tmp"),
    ("find_links_long", "--find-links /tmp"),
];

fn requirement_lines(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let marker = format!("/tmp/evalmesh_backend_marker_{}", uuid::Uuid::new_v4().simple());
        let backend = fill(EVIL_BACKEND, &[("@MARKER@", &marker)]);
        let mut files = Vec::new();
        for (project, line) in OWN_LINES.iter().chain(&REFUSED_LINES) {
            files.extend(under(
                project,
                &[
                    ("requirements.txt", format!("{line}\n")),
                    ("tests/test_x.py", PASS.to_owned()),
                    // What `./evil` names, built by importing its backend.
                    ("evil/pyproject.toml", EVIL_PYPROJECT.to_owned()),
                    ("evil/backend.py", backend.clone()),
                ],
            ));
        }
        let cfg = config(user, dir.path(), 62170, 2);
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());
        let id = node.submit_multipart("lines.zip", &zip_of(&files));
        let e = finished(&node, &id);
        let built = std::fs::read_to_string(&marker).ok();
        let _ = std::fs::remove_file(&marker);
        assert_eq!(built, None, "a requirement line had local code built on the host");
        assert_eq!(e["status"], json!("done"), "{e:#}");

        for (project, _) in OWN_LINES {
            assert_project_ran(&e, project);
            assert_module(&e, project, "tests/test_x.py", "done", [1, 0, 0, 0]);
        }
        for (project, line) in REFUSED_LINES {
            let p = &e["projects"][project];
            let error = p["error"].as_str().unwrap_or_else(|| panic!("{line:?} was taken: {p:#}"));
            assert!(error.contains(line), "the error of {project} names {line:?}: {error}");
            assert_eq!(outcome(p), [0, 0, 0, 0], "{p:#}");
            assert!(e["module_results"].get(project).is_none(), "{project} ran: {e:#}");
        }
        let all = everything_said(&node, &id);
        assert!(!all.contains("root:x:0:0"), "/etc/passwd was read into an answer:\n{all}");
        assert_config_shows_nowhere(&node, &id);
    });
}

for_each_user!(requirement_lines_naming_local_code_or_other_sources_fail_their_project, requirement_lines);

// ---------------------------------------------------------------- host files through a swapped folder

const SWAPPER: &str = include_str!("data/hostile/swap/test_a_swap.py");

/// How many host files the swapper aims at.
const TREE_FILES: usize = 2000;

/// A root-only folder of root-only files outside the node's data dir.
fn root_only_tree(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("root-only");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..TREE_FILES {
        let file = tree.join(format!("secret-{i:04}"));
        std::fs::write(&file, format!("secret {i}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o700)).unwrap();
    tree
}

/// The entries of `tree` (itself included) that are no longer root's alone:
/// mode other than 0600 (0700 for the folder), or owner or group not root.
fn changed_entries(tree: &Path) -> Vec<String> {
    let mut entries = vec![tree.to_path_buf()];
    entries.extend(std::fs::read_dir(tree).unwrap().map(|e| e.unwrap().path()));
    entries
        .into_iter()
        .filter_map(|path| {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let expected = if meta.is_dir() { 0o700 } else { 0o600 };
            let mode = meta.permissions().mode() & 0o7777;
            (mode != expected || meta.uid() != 0 || meta.gid() != 0)
                .then(|| format!("{} {mode:o} {}:{}", path.display(), meta.uid(), meta.gid()))
        })
        .collect()
}

/// Root only: a node run by an ordinary user cannot change the mode or
/// owner of root's files at all, so the attack means nothing against it.
fn swapped_folder(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let tree = root_only_tree(dir.path());
        let swapper = fill(SWAPPER, &[("@TREE@", &tree.display().to_string()), ("@SECONDS@", "10")]);
        // The swapper first, then modules enough to keep the other slot
        // starting runs of the same project while it swaps.
        let mut files = vec![
            ("swapper/requirements.txt".to_owned(), String::new()),
            ("swapper/swapped/keep.txt".to_owned(), "kept\n".to_owned()),
            ("swapper/tests/test_a_swap.py".to_owned(), swapper),
        ];
        for i in 0..16 {
            files.push((format!("swapper/tests/test_m{i:02}.py"), PASS.to_owned()));
        }
        let cfg = config(user, dir.path(), 62200, 2).set("executor", "module_timeout_s", "60");
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());

        let id = node.submit_multipart("swapper.zip", &zip_of(&files));
        let e = finished(&node, &id);
        let changed = changed_entries(&tree);
        assert!(
            changed.is_empty(),
            "{} of the root-only entries changed, as: {:?}",
            changed.len(),
            &changed[..5.min(changed.len())]
        );
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "swapper", "tests/test_a_swap.py", "done", [1, 0, 0, 0]);
        for i in 0..16 {
            assert_module(&e, "swapper", &format!("tests/test_m{i:02}.py"), "done", [1, 0, 0, 0]);
        }
        assert_runs_ended(&node, user, 62200, 2);
    });
}

#[test]
fn a_swapped_folder_never_opens_host_files_to_runs_as_root() {
    swapped_folder(User::Root);
}

// ---------------------------------------------------------------- hijacked and faked reports

const HIJACK_HELPER: &str = include_str!("data/hostile/hijack/atexit_hijack.py");
const HIJACK_FIFO: &str = include_str!("data/hostile/hijack/test_fifo.py");
const HIJACK_ZERO: &str = include_str!("data/hostile/hijack/test_zero.py");
const FLOOD: &str = include_str!("data/hostile/hijack/test_flood.py");

fn hijacked_reports(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        // Honest modules take seconds: a module stuck on its report shows
        // soon, and so does an evaluation that never ends.
        let cfg = config(user, dir.path(), 62300, 2).set("executor", "module_timeout_s", "30").set(
            "executor",
            "memory_limit_bytes",
            &(1u64 << 30).to_string(),
        );
        // Should a node read /dev/zero to its end, it dies at 4 GiB, alone.
        let launch = Launch { uid: user.uid(), address_space_bytes: Some(4 << 30), ..Launch::default() };
        let node = Node::launch(&cfg, dir.path(), "node", launch);
        let before = rss_kib(&node);

        let mut files = under(
            "fifo",
            &[("requirements.txt", ""), ("tests/atexit_hijack.py", HIJACK_HELPER), ("tests/test_fifo.py", HIJACK_FIFO)],
        );
        files.extend(under(
            "zero",
            &[("requirements.txt", ""), ("tests/atexit_hijack.py", HIJACK_HELPER), ("tests/test_zero.py", HIJACK_ZERO)],
        ));
        files.extend(under("flood", &[("requirements.txt", ""), ("tests/test_flood.py", FLOOD)]));
        let id = node.submit_multipart("hijack.zip", &zip_of(&files));
        node.wait_finished(&id, Duration::from_secs(150));
        let e = node.evaluation(&id, "?detail=tests");
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "fifo", "tests/test_fifo.py", "done", [1, 0, 0, 0]);
        assert_module(&e, "zero", "tests/test_zero.py", "done", [1, 0, 0, 0]);
        assert_error_module(&e, "flood", "tests/test_flood.py", 1);
        assert_slots_free(&node);

        let honest = zip_of(&under("honest", &[("requirements.txt", ""), ("tests/test_honest.py", PASS_2_FAIL_1)]));
        let second = node.submit_multipart("honest.zip", &honest);
        let e = finished(&node, &second);
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "honest", "tests/test_honest.py", "done", [2, 1, 0, 0]);

        let after = rss_kib(&node);
        assert!(after < before + 64 * 1024, "node memory grew from {before} KiB to {after} KiB");
        assert_slots_free(&node);
        assert_runs_ended(&node, user, 62300, 2);
    });
}

for_each_user!(hijacked_report_paths_neither_stall_nor_bloat_the_node, hijacked_reports);

const FAKES: &str = include_str!("data/hostile/faked/fakes.py");
const FAKE_REWRITE: &str = include_str!("data/hostile/faked/test_rewrite.py");
const FAKE_EXIT: &str = include_str!("data/hostile/faked/test_exit.py");
const FAKE_STREAM: &str = include_str!("data/hostile/faked/test_stream.py");

fn faked_reports(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let cfg = config(user, dir.path(), 62400, 2).set("executor", "module_timeout_s", "60");
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());
        let zip = zip_of(&under(
            "faker",
            &[
                ("requirements.txt", ""),
                ("tests/fakes.py", FAKES),
                ("tests/test_rewrite.py", FAKE_REWRITE),
                ("tests/test_exit.py", FAKE_EXIT),
                ("tests/test_stream.py", FAKE_STREAM),
            ],
        ));
        let id = node.submit_multipart("faker.zip", &zip);
        let e = finished(&node, &id);
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "faker", "tests/test_rewrite.py", "done", [2, 2, 0, 0]);
        assert_error_module(&e, "faker", "tests/test_exit.py", 1);
        assert_error_module(&e, "faker", "tests/test_stream.py", 0);
        let p = &e["projects"]["faker"];
        assert!(p["passed"].as_u64().is_some_and(|passed| passed <= 3), "{p:#}");
        assert_runs_ended(&node, user, 62400, 2);
    });
}

for_each_user!(faked_reports_count_only_what_truly_ran, faked_reports);
