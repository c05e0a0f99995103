//! Checks the EcoLogits reimplementation against ecologits 0.11.3 on every case of
//! `tests/fixtures/ecologits_reference.json` (made by
//! `scripts/fixtures/make_ecologits_fixture.py`).

mod common;

use seedling::energy::ecologits::{
    estimate, HostedImpacts, HostedRequest, ModelSize, ParameterRange,
};
use seedling::energy::Band;
use serde_json::Value;

/// Relative tolerance against ecologits' numbers.
const TOLERANCE: f64 = 0.01;

fn relative_error(actual: f64, expected: f64) -> f64 {
    if expected == 0.0 {
        actual.abs()
    } else {
        ((actual - expected) / expected).abs()
    }
}

fn range(value: &Value) -> ParameterRange {
    ParameterRange {
        min: value["min"].as_f64().expect("min"),
        max: value["max"].as_f64().expect("max"),
    }
}

fn request(case: &Value) -> HostedRequest {
    HostedRequest {
        provider: case["provider"].as_str().expect("provider").to_string(),
        model: case["model"].as_str().expect("model").to_string(),
        output_tokens: case["output_tokens"].as_u64().expect("output_tokens"),
        // A null latency was not measured, so it becomes infinity, as ecologits uses math.inf.
        request_latency_s: case["request_latency_s"].as_f64().unwrap_or(f64::INFINITY),
        zone: case["zone"].as_str().map(str::to_string),
    }
}

fn size_override(case: &Value) -> Option<ModelSize> {
    let size = &case["model_size_override"];
    if size.is_null() {
        return None;
    }
    Some(ModelSize {
        total_b: range(&size["total_b"]),
        active_b: range(&size["active_b"]),
    })
}

fn run_case(case: &Value) -> HostedImpacts {
    let name = case["name"].as_str().expect("name");
    estimate(&request(case), size_override(case)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Returns the largest relative error of `band`'s estimate, low and high against
/// the fixture's value, min and max, after checking each against the tolerance.
fn check_band(case_name: &str, field: &str, band: Band, expected: &Value) -> f64 {
    let pairs = [
        ("value", band.estimate),
        ("min", band.low),
        ("max", band.high),
    ];
    let mut worst: f64 = 0.0;
    for (key, actual) in pairs {
        let reference = expected[key].as_f64().expect("number");
        let error = relative_error(actual, reference);
        assert!(
            error <= TOLERANCE,
            "{case_name}: {field}.{key} is {actual}, ecologits gives {reference} ({:.3}% off)",
            error * 100.0
        );
        worst = worst.max(error);
    }
    worst
}

#[test]
fn fixture_records_versions() {
    let fixture = common::fixture("ecologits_reference.json");
    assert_eq!(fixture["ecologits_version"], "0.11.3");
    assert!(fixture["python_version"].is_string());
    assert!(fixture["cases"].as_array().expect("cases").len() >= 10);
}

#[test]
fn energy_and_usage_gwp_within_one_percent() {
    let fixture = common::fixture("ecologits_reference.json");
    let mut worst: f64 = 0.0;
    for case in fixture["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let expected = &case["expected"];
        let impacts = run_case(case);
        worst = worst.max(check_band(
            name,
            "energy_kwh",
            impacts.energy_kwh,
            &expected["energy_kwh"],
        ));
        worst = worst.max(check_band(
            name,
            "usage_gwp_kg",
            impacts.usage_gwp_kg,
            &expected["usage_gwp_kg"],
        ));
    }
    println!("largest relative error of energy and usage GWP: {worst:e}");
}

#[test]
fn embodied_and_total_gwp_within_one_percent() {
    let fixture = common::fixture("ecologits_reference.json");
    let mut worst: f64 = 0.0;
    for case in fixture["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let expected = &case["expected"];
        let impacts = run_case(case);
        worst = worst.max(check_band(
            name,
            "embodied_gwp_kg",
            impacts.embodied_gwp_kg,
            &expected["embodied_gwp_kg"],
        ));
        worst = worst.max(check_band(
            name,
            "gwp_kg",
            impacts.gwp_kg,
            &expected["gwp_kg"],
        ));
    }
    println!("largest relative error of embodied and total GWP: {worst:e}");
}

#[test]
fn latency_gpus_pue_and_zone_match() {
    let fixture = common::fixture("ecologits_reference.json");
    for case in fixture["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let expected = &case["expected"];
        let impacts = run_case(case);

        let latency = &expected["generation_latency_s"];
        let low = latency["min"].as_f64().expect("latency min");
        let high = latency["max"].as_f64().expect("latency max");
        assert!(
            relative_error(impacts.generation_latency_s.low, low) <= 1e-9,
            "{name}: latency low {:?}",
            impacts.generation_latency_s
        );
        assert!(
            relative_error(impacts.generation_latency_s.high, high) <= 1e-9,
            "{name}: latency high {:?}",
            impacts.generation_latency_s
        );

        assert_eq!(
            Some(impacts.gpu_count_low),
            expected["gpu_count"]["min"].as_u64(),
            "{name}: GPU count low"
        );
        assert_eq!(
            Some(impacts.gpu_count_high),
            expected["gpu_count"]["max"].as_u64(),
            "{name}: GPU count high"
        );
        assert_eq!(
            Some(impacts.pue.low),
            expected["pue"]["min"].as_f64(),
            "{name}: PUE low"
        );
        assert_eq!(
            Some(impacts.pue.high),
            expected["pue"]["max"].as_f64(),
            "{name}: PUE high"
        );
        assert_eq!(
            Some(impacts.zone.as_str()),
            expected["zone"].as_str(),
            "{name}: zone"
        );
        assert_eq!(
            Some(impacts.electricity_gwp_kg_per_kwh),
            expected["electricity_gwp_kg_per_kwh"].as_f64(),
            "{name}: electricity GWP factor"
        );
        assert_eq!(
            impacts.deployment.tps,
            expected["tps"].as_f64(),
            "{name}: tps"
        );
        assert_eq!(
            impacts.deployment.ttft_s,
            expected["ttft_s"].as_f64(),
            "{name}: ttft"
        );
    }
}

#[test]
fn listed_sizes_and_warnings_match() {
    let fixture = common::fixture("ecologits_reference.json");
    for case in fixture["cases"].as_array().expect("cases") {
        if !case["model_size_override"].is_null() {
            continue;
        }
        let name = case["name"].as_str().expect("name");
        let impacts = run_case(case);
        let parameters = &case["parameters_b"];
        assert_eq!(
            impacts.size.total_b,
            range(&parameters["total"]),
            "{name}: total parameters"
        );
        assert_eq!(
            impacts.size.active_b,
            range(&parameters["active"]),
            "{name}: active parameters"
        );
        let warnings: Vec<&str> = case["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .map(|code| code.as_str().expect("code"))
            .collect();
        assert_eq!(impacts.warnings, warnings, "{name}: warnings");
    }
}

#[test]
fn method_names_ecologits_version() {
    let fixture = common::fixture("ecologits_reference.json");
    let impacts = run_case(&fixture["cases"][0]);
    assert!(
        impacts.method.contains("EcoLogits 0.11.3"),
        "{}",
        impacts.method
    );
}
