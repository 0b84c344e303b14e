//! The examples users copy: every YAML block of docs/workflows.md and the
//! manifests in manifests/examples/ run as written, on the quick start's
//! two agents (`build-1` role=build, `test-1` role=test), and end in the
//! phase their `# ends:` comment names.

use std::path::Path;
use std::time::Duration;

use sloth_sdk::Api;
use sloth_sdk::objects::{TaskRunSpec, WorkflowSpec};
use sloth_tests::{Agent, ApiServer, run_to_end, runtime, slothctl, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
}

/// The YAML blocks of a Markdown file that define a Workflow, with the
/// phase each says it ends in.
fn workflow_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                let block = std::mem::take(block);
                current = None;
                if block.contains("kind: Workflow") {
                    let ends = block
                        .lines()
                        .find_map(|l| l.strip_prefix("# ends: "))
                        .unwrap_or_else(|| panic!("a Workflow example without `# ends:`:\n{block}"))
                        .trim()
                        .to_string();
                    blocks.push((block, ends));
                }
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn name_of(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("name: "))
        .expect("metadata.name")
        .trim()
        .to_string()
}

#[test]
fn every_workflow_example_runs_as_written() {
    let server = ApiServer::start_with(&["--controllers"]);
    let _build = Agent::start(
        &server,
        "build-1",
        &["--labels", "role=build,zone=local", "--capacity", "4"],
    );
    let _test = Agent::start(
        &server,
        "test-1",
        &["--labels", "role=test,zone=local", "--capacity", "4"],
    );
    let rt = runtime();
    let client = server.client_in(&rt);

    let docs =
        std::fs::read_to_string(repo().join("docs/workflows.md")).expect("docs/workflows.md");
    let mut expected: Vec<(String, String)> = workflow_blocks(&docs)
        .into_iter()
        .map(|(yaml, ends)| {
            let mut cmd = slothctl(&server);
            cmd.args(["apply", "-f", "-"]);
            run_to_end(cmd, Some(&yaml), DEADLINE).ok();
            (name_of(&yaml), ends)
        })
        .collect();
    assert!(
        expected.len() >= 5,
        "the docs lost their examples: {expected:?}"
    );

    let mut cmd = slothctl(&server);
    cmd.arg("apply")
        .arg("-f")
        .arg(repo().join("manifests/examples"));
    run_to_end(cmd, None, DEADLINE).ok();
    expected.push(("hello-pipeline".into(), "Succeeded".into()));

    let workflows: Api<WorkflowSpec> = Api::namespaced(client.clone(), "default");
    for (name, ends) in &expected {
        let wf = wait_until(DEADLINE, || {
            rt.block_on(workflows.get(name)).ok().filter(|w| {
                w.status
                    .as_ref()
                    .is_some_and(|s| s.completion_time.is_some())
            })
        })
        .unwrap_or_else(|| panic!("workflow {name} never finished\n{}", server.log()));
        let phase = format!("{:?}", wf.status_or_default().phase);
        assert_eq!(&phase, ends, "workflow {name}: {:#?}", wf.status);
    }

    // The pipeline ran where its selectors say.
    let taskruns: Api<TaskRunSpec> = Api::namespaced(client, "default");
    let agent_of = |task: &str| {
        let tr = rt
            .block_on(taskruns.get(&format!("hello-pipeline-{task}-1")))
            .expect("taskrun");
        tr.status.and_then(|s| s.agent).unwrap_or_default()
    };
    assert_eq!(agent_of("fetch"), "build-1");
    assert_eq!(agent_of("test"), "test-1");
    assert_eq!(agent_of("package"), "build-1");
}
