//! The dashboard at /ui/ in a real (headless) chromium, against a real
//! apiserver with its controllers and agents, signed in with bearer tokens:
//! live updates without a reload, cancelling a workflow, following a log,
//! and a viewer's page without actions. Each test saves screenshots of the
//! views it visits (target/ui-screenshots/; docs/ui/ with
//! SLOTH_UPDATE_SCREENSHOTS=1).

#[path = "ui_browser/browser.rs"]
mod browser;

use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::Browser;
use serde_json::Value;
use sloth_tests::{Agent, ApiServer, Run, run_to_end, slothctl, wait_until, workflow_yaml};

const ADMIN_TOKEN: &str = "ui-admin-token-0123456789abcdef";
const VIEWER_TOKEN: &str = "ui-viewer-token-0123456789abcdef";
const AGENT_TOKEN: &str = "ui-agent-a1-token-0123456789abcdef";
const API_DEADLINE: Duration = Duration::from_secs(60);

/// An apiserver with its controllers, tokens for an admin (alice), a viewer
/// (victor) and agent a1, and a directory for gate files tasks wait on.
struct Cluster {
    server: ApiServer,
    temp: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let tokens = temp.path().join("tokens.csv");
        std::fs::write(
            &tokens,
            format!(
                "{ADMIN_TOKEN},alice,admin\n{VIEWER_TOKEN},victor,viewer\n{AGENT_TOKEN},agent:a1,agent\n"
            ),
        )
        .expect("write tokens");
        let server = ApiServer::start_with(&[
            "--controllers",
            "--token-file",
            tokens.to_str().expect("utf-8 path"),
        ]);
        Self { server, temp }
    }

    fn agent(&self) -> Agent {
        Agent::start(
            &self.server,
            "a1",
            &["--token", AGENT_TOKEN, "--capacity", "4"],
        )
    }

    /// `slothctl --token ADMIN ARGS` (with `input` on stdin).
    fn admin(&self, args: &[&str], input: Option<&str>) -> Run {
        let mut cmd = slothctl(&self.server);
        cmd.args(["--token", ADMIN_TOKEN]).args(args);
        run_to_end(cmd, input, API_DEADLINE)
    }

    fn apply(&self, yaml: &str) {
        self.admin(&["apply", "-f", "-"], Some(yaml)).ok();
    }

    /// An object as the API returns it.
    fn get(&self, kind: &str, name: &str) -> Value {
        self.admin(&["get", kind, name, "-o", "json"], None)
            .ok()
            .json()
    }

    /// A gate file: a task blocked on it goes on once it exists.
    fn gate(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }

    /// The dashboard's URL.
    fn ui(&self) -> String {
        format!("{}/ui/", self.server.http_url())
    }
}

/// A shell line that waits (at most two minutes) for `gate` to exist.
fn wait_for_gate(gate: &Path) -> String {
    format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done",
        gate.display()
    )
}

fn open(path: &Path) {
    std::fs::write(path, "").expect("open gate");
}

/// Opens the dashboard and signs in with `token`.
async fn sign_in(browser: &Browser, cluster: &Cluster, token: &str) {
    browser.client.goto(&cluster.ui()).await.expect("open /ui/");
    let input = browser.element("#token").await;
    input.send_keys(token).await.expect("type token");
    browser.click("#login button[type=submit]").await;
    browser
        .wait("the signed-in page", |c| async move {
            let user = browser::text(&c, "#user").await?;
            (!user.is_empty()).then_some(())
        })
        .await;
}

/// Goes to a view through the navigation bar and waits for its watch.
async fn show(browser: &Browser, view: &str) {
    browser.click(&format!("#nav a[data-view={view}]")).await;
    browser
        .wait(&format!("the {view} view to be live"), |c| async move {
            let on = c
                .find(fantoccini::Locator::Css("#view"))
                .await
                .ok()?
                .attr("data-view")
                .await
                .ok()??;
            let live = browser::text(&c, "#live").await?;
            (on == view && live == "live").then_some(())
        })
        .await;
}

/// Waits until the element at `css` has exactly `text`.
async fn wait_text(browser: &Browser, css: &str, want: &str) {
    browser
        .wait(&format!("{css} to read {want:?}"), |c| async move {
            (browser::text(&c, css).await? == want).then_some(())
        })
        .await;
}

/// Waits until the DAG node of `task` shows `phase`.
async fn wait_task_phase(browser: &Browser, task: &str, phase: &str) {
    let css = format!("svg.dag g.task[data-task=\"{task}\"][data-phase={phase}]");
    browser.element(&css).await;
}

fn pipeline_yaml(gate: &Path) -> String {
    let wait = wait_for_gate(gate);
    let spec = format!(
        r#"  tasks:
    - name: build
      run: {{shell: 'echo building; {wait}; echo built'}}
    - {{name: test-unit, dependsOn: [build], run: {{shell: 'echo unit'}}}}
    - {{name: test-lint, dependsOn: [build], run: {{shell: 'echo lint'}}}}
    - {{name: package, dependsOn: [test-unit, test-lint], run: {{shell: 'echo package'}}}}
    - {{name: deploy, dependsOn: [package], run: {{shell: 'echo deploy'}}}}
  finally:
    - {{name: notify, run: {{shell: 'echo notify'}}}}
"#
    );
    workflow_yaml("pipeline", &spec)
}

#[test]
fn an_agent_and_a_running_workflow_update_live_without_a_reload() {
    let cluster = Cluster::start();
    let gate = cluster.gate("build-gate");
    sloth_tests::runtime().block_on(async {
        let browser = Browser::start(1280, 800).await;
        sign_in(&browser, &cluster, ADMIN_TOKEN).await;
        // A reload would clear this: the page must change by itself.
        browser.eval("window.slothNoReload = 'still here'; return true;").await;

        show(&browser, "agents").await;
        assert_eq!(browser.count("tbody tr").await, 0, "no agent yet");
        let _agent = cluster.agent();
        wait_text(&browser, "tr[data-name=a1] .badge", "Ready").await;
        browser.screenshot("agents").await;

        show(&browser, "workflows").await;
        cluster.apply(&pipeline_yaml(&gate));
        wait_text(&browser, "tr[data-name=pipeline] .badge", "Running").await;
        wait_task_phase(&browser, "build", "Running").await;
        wait_task_phase(&browser, "deploy", "Pending").await;
        browser.screenshot("workflow-running").await;

        open(&gate);
        wait_task_phase(&browser, "build", "Succeeded").await;
        wait_task_phase(&browser, "deploy", "Succeeded").await;
        wait_text(&browser, "#dag-phase", "Succeeded").await;
        wait_text(&browser, "tr[data-name=pipeline] td[data-label=Progress]", "6/6").await;
        browser.screenshot("workflow-succeeded").await;

        let marker = browser.eval("return window.slothNoReload || null;").await;
        assert_eq!(marker, "still here", "the page was reloaded");

        // The other views, for the docs; each one's watch goes live.
        cluster.admin(&["state", "set", "release", "v1.4.2"], None).ok();
        cluster.apply(
            "apiVersion: sloth.dev/v1\nkind: CronWorkflow\nmetadata: {name: nightly}\nspec:\n  schedule: '0 3 * * *'\n  suspend: true\n  workflowSpec:\n    tasks:\n      - {name: backup, run: {shell: 'echo backup'}}\n",
        );
        show(&browser, "taskruns").await;
        wait_text(&browser, "#count", "6 of 6").await;
        browser.screenshot("taskruns").await;
        for view in ["cronworkflows", "state"] {
            show(&browser, view).await;
            browser.element("tbody tr").await;
            browser.screenshot(view).await;
        }
        show(&browser, "events").await;
        browser.screenshot("events").await;
        // Agent heartbeat locks live in sloth-system: all namespaces.
        browser.client.execute(
            "const ns = document.getElementById('namespace'); ns.value = ''; ns.dispatchEvent(new Event('change')); return true;",
            vec![],
        ).await.expect("clear namespace");
        show(&browser, "locks").await;
        browser.element("tbody tr").await;
        browser.screenshot("locks").await;
        show(&browser, "stacks").await;
        browser.screenshot("stacks").await;

        // A phone-sized window: rows become cards.
        browser.client.set_window_size(390, 844).await.expect("resize");
        show(&browser, "workflows").await;
        wait_text(&browser, "#dag-phase", "Succeeded").await;
        browser.screenshot("workflows-phone").await;
        browser.close().await;
    });
}

#[test]
fn cancelling_a_workflow_from_the_page_stops_it() {
    let cluster = Cluster::start();
    let _agent = cluster.agent();
    let never = cluster.gate("never-opened");
    let wait = wait_for_gate(&never);
    cluster.apply(&format!(
        "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {{name: long}}\nspec:\n  tasks:\n    - {{name: wait, run: {{shell: '{wait}'}}}}\n    - {{name: after, dependsOn: [wait], run: {{shell: 'echo after'}}}}\n"
    ));
    sloth_tests::runtime().block_on(async {
        let browser = Browser::start(1280, 800).await;
        sign_in(&browser, &cluster, ADMIN_TOKEN).await;
        show(&browser, "workflows").await;
        wait_task_phase(&browser, "wait", "Running").await;
        browser
            .element("tr[data-name=long] button[data-action=rerun]")
            .await;
        browser
            .click("tr[data-name=long] button[data-action=cancel]")
            .await;
        wait_text(&browser, "tr[data-name=long] .badge", "Cancelled").await;
        // A finished workflow offers no cancel any more.
        assert_eq!(
            browser
                .count("tr[data-name=long] button[data-action=cancel]")
                .await,
            0
        );
        browser.screenshot("workflow-cancelled").await;
        // Re-run: a copy under a new name, which the page shows by itself.
        browser
            .click("tr[data-name=long] button[data-action=rerun]")
            .await;
        browser.element("tr[data-name^=long-rerun-]").await;
        browser.close().await;
    });
    let list = cluster
        .admin(&["get", "workflows", "-o", "json"], None)
        .ok()
        .json();
    let copy = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| {
            w["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("long-rerun-"))
        })
        .unwrap_or_else(|| panic!("no re-run copy: {list:#}"));
    assert_eq!(
        copy["metadata"]["annotations"]["sloth.dev/rerun-of"],
        "long"
    );
    assert_ne!(copy["spec"]["state"], "Cancelled", "{copy:#}");
    let wf = cluster.get("workflow", "long");
    assert_eq!(wf["spec"]["state"], "Cancelled", "{wf:#}");
    assert_eq!(wf["status"]["phase"], "Cancelled", "{wf:#}");
    // Its running task stopped too: no TaskRun of it is still running.
    let stopped = wait_until(API_DEADLINE, || {
        let list = cluster
            .admin(
                &[
                    "get",
                    "taskruns",
                    "-l",
                    "sloth.dev/workflow=long",
                    "-o",
                    "json",
                ],
                None,
            )
            .ok()
            .json();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()
            && items
                .iter()
                .all(|t| matches!(t["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))))
        .then_some(())
    });
    assert!(
        stopped.is_some(),
        "the cancelled workflow's TaskRun kept running"
    );
}

#[test]
fn a_taskruns_log_follows_while_it_runs() {
    let cluster = Cluster::start();
    let _agent = cluster.agent();
    let gate = cluster.gate("talk-gate");
    let wait = wait_for_gate(&gate);
    cluster.apply(&format!(
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {{name: talker}}\nspec:\n  agentName: a1\n  run: {{shell: 'echo first-line; {wait}; echo second-line'}}\n"
    ));
    sloth_tests::runtime().block_on(async {
        let browser = Browser::start(1280, 800).await;
        sign_in(&browser, &cluster, ADMIN_TOKEN).await;
        show(&browser, "taskruns").await;
        wait_text(&browser, "tr[data-name=talker] .badge", "Running").await;
        browser
            .click("tr[data-name=talker] button[data-panel=log]")
            .await;
        browser
            .wait("the first line in the log", |c| async move {
                browser::text(&c, "#log")
                    .await?
                    .contains("first-line")
                    .then_some(())
            })
            .await;
        let log = browser.text("#log").await.unwrap_or_default();
        assert!(!log.contains("second-line"), "{log}");
        assert_eq!(
            cluster.get("taskrun", "talker")["status"]["phase"],
            "Running",
            "the line arrived while the task ran"
        );
        browser.screenshot("taskrun-log").await;
        open(&gate);
        browser
            .wait("the second line in the log", |c| async move {
                browser::text(&c, "#log")
                    .await?
                    .contains("second-line")
                    .then_some(())
            })
            .await;
        wait_text(&browser, "tr[data-name=talker] .badge", "Succeeded").await;
        browser.close().await;
    });
}

#[test]
fn a_viewers_page_offers_no_actions() {
    let cluster = Cluster::start();
    let _agent = cluster.agent();
    let gate = cluster.gate("viewer-gate");
    cluster.apply(&pipeline_yaml(&gate));
    sloth_tests::runtime().block_on(async {
        let browser = Browser::start(1280, 800).await;
        sign_in(&browser, &cluster, VIEWER_TOKEN).await;
        assert_eq!(browser.text("#user").await.as_deref(), Some("victor"));
        show(&browser, "workflows").await;
        wait_task_phase(&browser, "build", "Running").await;
        assert_eq!(browser.count("button[data-action]").await, 0, "workflows");
        browser.screenshot("viewer-workflows").await;
        show(&browser, "agents").await;
        wait_text(&browser, "tr[data-name=a1] .badge", "Ready").await;
        assert_eq!(browser.count("button[data-action]").await, 0, "agents");
        show(&browser, "taskruns").await;
        browser.element("tbody tr").await;
        // Reading a log is offered; no write is.
        assert!(browser.count("button[data-panel=log]").await > 0);
        assert_eq!(browser.count("button[data-action]").await, 0, "taskruns");
        let light = browser.background().await;
        browser.close().await;

        // The theme follows the system: a browser set to dark gets a dark page.
        let dark = Browser::start_dark(1280, 800).await;
        sign_in(&dark, &cluster, VIEWER_TOKEN).await;
        show(&dark, "workflows").await;
        wait_task_phase(&dark, "build", "Running").await;
        let background = dark.background().await;
        let brightness = |[r, g, b]: [u8; 3]| (u32::from(r) + u32::from(g) + u32::from(b)) / 3;
        assert!(brightness(background) < 64, "not dark: {background:?}");
        assert!(
            brightness(light) > 192,
            "the default theme is not light: {light:?}"
        );
        dark.screenshot("workflows-dark").await;
        open(&gate);
        dark.close().await;
    });
}
