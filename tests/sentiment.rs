//! The sentiment task on the real UCI sentences: a split that never leaks a test text
//! into training, a short fine-tuning run, and the committed head's held-out score.

mod common;

use std::collections::HashSet;
use std::process::Command;

use common::root;
use seedling::data::splits::normalized;
use seedling::native::Defaults;
use seedling::tasks::sentiment;

#[test]
fn split_never_shares_text() {
    let defaults = Defaults::open(&root()).unwrap();
    let (items, _) = seedling::finetune::uci_items(&defaults).unwrap();
    assert_eq!(items.len(), 3000);
    let split = sentiment::split(&items);
    assert_eq!(split.train.len() + split.test.len(), items.len());

    let train_texts: HashSet<String> = split
        .train
        .iter()
        .map(|&i| normalized(&items[i].text))
        .collect();
    let leaked: Vec<&str> = split
        .test
        .iter()
        .map(|&i| items[i].text.as_str())
        .filter(|t| train_texts.contains(&normalized(t)))
        .collect();
    assert!(
        leaked.is_empty(),
        "test texts found in training: {leaked:?}"
    );

    let positives = split.test.iter().filter(|&&i| items[i].label == 1).count();
    let share = positives as f64 / split.test.len() as f64;
    assert!(
        (share - 0.5).abs() < 0.02,
        "positive share of the test split {share}"
    );
}

#[test]
fn finetune_smoke_run_writes_head() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_seedling"))
        .current_dir(root())
        .args([
            "finetune",
            "--task",
            "sentiment",
            "--train-limit",
            "300",
            "--epochs",
            "60",
            "--out",
        ])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());

    let (head, record) = seedling::finetune::load_head(out.path(), "sentiment").unwrap();
    assert_eq!(head.dim, 384);
    assert_eq!(record.train_examples, 300);
    assert_eq!(record.test_examples, 997);
    assert!(
        record.held_out_accuracy > 0.7,
        "held-out accuracy {}",
        record.held_out_accuracy
    );
    assert!(record.training_wh.estimate > 0.0);
    assert!(record.command.contains("--train-limit 300"));
}

#[test]
fn committed_head_matches_its_record() {
    let (head, record) =
        seedling::finetune::load_head(&root().join("models/heads"), "sentiment").unwrap();
    assert_eq!(head.classes, 2);
    assert!(
        record.held_out_accuracy > 0.85,
        "committed head scores {}",
        record.held_out_accuracy
    );
    assert_eq!(record.split_seed, sentiment::SPLIT_SEED);
}

#[test]
fn tampered_head_rejected() {
    let folder = tempfile::tempdir().unwrap();
    let heads = root().join("models/heads");
    std::fs::copy(
        heads.join("sentiment.json"),
        folder.path().join("sentiment.json"),
    )
    .unwrap();
    let mut weights = std::fs::read(heads.join("sentiment.safetensors")).unwrap();
    let last = weights.len() - 1;
    weights[last] ^= 0x55;
    std::fs::write(folder.path().join("sentiment.safetensors"), weights).unwrap();
    let message = seedling::finetune::load_head(folder.path(), "sentiment")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("SHA-256 mismatch"), "{message}");
}
