use super::*;
use crate::objects::Payload;
use crate::objects::common::LuaPayload;

/// A shell task `name` depending on `deps` (also for validation tests).
pub(crate) fn task(name: &str, deps: &[&str]) -> WorkflowTask {
    WorkflowTask {
        name: name.into(),
        run: Payload {
            shell: Some("true".into()),
            lua: None,
            command: None,
        },
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        ..WorkflowTask::default()
    }
}

fn names<'a>(dag: &'a Dag, indices: &[usize]) -> Vec<&'a str> {
    indices.iter().map(|&i| dag.name(i)).collect()
}

/// The planner's first `topological`: repeated passes in declaration
/// order, kept here as the reference the one-walk version must match.
fn passes(dag: &Dag, section: Section) -> Vec<usize> {
    let range = dag.indices(section);
    let mut placed = vec![false; dag.len()];
    let mut order = Vec::new();
    while order.len() < range.len() {
        let before = order.len();
        for i in range.clone() {
            if placed[i] {
                continue;
            }
            let ready = dag
                .upstream(i)
                .iter()
                .all(|&d| !range.contains(&d) || placed[d]);
            if ready {
                placed[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            order.extend(range.clone().filter(|&i| !placed[i]));
            break;
        }
    }
    order
}

#[test]
fn cycles_start_at_the_earliest_declared_task() {
    // 0 -> 2 -> 1 -> 2: the cycle is found entering at 2 but printed from 1.
    let edges = vec![vec![2], vec![2], vec![1]];
    assert_eq!(find_cycles(&edges), vec![vec![1, 2, 1]]);
}

#[test]
fn acyclic_graphs_have_no_cycles() {
    let edges = vec![vec![], vec![0], vec![0], vec![1, 2]];
    assert!(find_cycles(&edges).is_empty());
}

#[test]
fn a_long_chain_does_not_overflow_and_a_closing_edge_is_found() {
    let n = 100_000;
    let mut edges: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
    edges[n - 1] = vec![0];
    let cycles = find_cycles(&edges);
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].len(), n + 1);
}

#[test]
fn two_separate_cycles_are_both_reported() {
    let edges = vec![vec![1], vec![0], vec![3], vec![2]];
    assert_eq!(find_cycles(&edges), vec![vec![0, 1, 0], vec![2, 3, 2]]);
}

#[test]
fn upstream_includes_result_producers_once_and_downstream_mirrors_it() {
    let mut deploy = task("deploy", &["test", "build"]);
    deploy.run.shell = Some("deploy $(tasks.build.results.image)".into());
    deploy
        .env
        .insert("V".to_string(), "$(tasks.version.results.v)".to_string());
    let tasks = [
        task("build", &[]),
        task("test", &[]),
        task("version", &[]),
        deploy,
    ];
    let dag = Dag::new(&tasks, &[]);
    assert_eq!(names(&dag, dag.upstream(3)), ["test", "build", "version"]);
    assert_eq!(names(&dag, dag.downstream(0)), ["deploy"]);
    assert!(!dag.waits_for_missing(3));
}

#[test]
fn a_lua_workflow_file_script_is_not_scanned_for_references() {
    let mut build = task("build", &[]);
    build.run = Payload {
        shell: None,
        command: None,
        lua: Some(LuaPayload {
            script: "task('deploy'):command('echo $(tasks.build.results.v)')".into(),
            entry: Some("ci/build".into()),
            ..Default::default()
        }),
    };
    let dag = Dag::new(&[build], &[]);
    assert!(dag.upstream(0).is_empty(), "no dependency on itself");
    assert!(!dag.waits_for_missing(0));
}

#[test]
fn unknown_and_self_references_are_missing_not_edges() {
    let tasks = [task("a", &["a"]), task("b", &["nope"]), task("c", &["b"])];
    let dag = Dag::new(&tasks, &[]);
    assert!(dag.waits_for_missing(0) && dag.waits_for_missing(1));
    assert!(!dag.waits_for_missing(2));
    assert!(dag.upstream(0).is_empty() && dag.upstream(1).is_empty());
}

#[test]
fn finally_tasks_are_numbered_after_the_dag_and_may_read_its_results() {
    let mut report = task("report", &[]);
    report.run.shell = Some("echo $(tasks.build.results.v)".into());
    let dag = Dag::new(&[task("build", &[])], &[report]);
    assert_eq!(dag.section(0), Section::Tasks);
    assert_eq!(dag.section(1), Section::Finally);
    assert_eq!(dag.upstream(1), [0]);
    assert_eq!(dag.topological(Section::Finally), [1]);
    assert!(dag.cycles(Section::Finally).is_empty());
}

#[test]
fn topological_keeps_declaration_order_for_ties_and_puts_cycles_last() {
    let tasks = [
        task("d", &["b", "c"]),
        task("b", &["a"]),
        task("c", &["a"]),
        task("a", &[]),
        task("x", &["y"]),
        task("y", &["x"]),
        task("z", &[]),
    ];
    let dag = Dag::new(&tasks, &[]);
    let order = dag.topological(Section::Tasks);
    assert_eq!(names(&dag, &order), ["a", "z", "b", "c", "d", "x", "y"]);
    assert_eq!(order, passes(&dag, Section::Tasks));
    assert_eq!(
        dag.cycles(Section::Tasks)
            .iter()
            .map(|c| names(&dag, c))
            .collect::<Vec<_>>(),
        [["x", "y", "x"]]
    );
}

#[test]
fn topological_matches_repeated_passes_on_shuffled_graphs() {
    // A deterministic pseudo-random generator: graphs of 40 tasks whose
    // dependencies point anywhere earlier or later in the list.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % bound as u64).unwrap_or(0)
    };
    for _ in 0..200 {
        let n = 40;
        let tasks: Vec<WorkflowTask> = (0..n)
            .map(|i| {
                let deps: Vec<String> = (0..next(4))
                    .map(|_| format!("t{}", next(n)))
                    .filter(|d| *d != format!("t{i}"))
                    .collect();
                WorkflowTask {
                    depends_on: deps,
                    ..task(&format!("t{i}"), &[])
                }
            })
            .collect();
        let dag = Dag::new(&tasks, &[]);
        assert_eq!(
            dag.topological(Section::Tasks),
            passes(&dag, Section::Tasks)
        );
    }
}
