//! Checks `match_profile` against the browser strings in
//! `tests/fixtures/device_strings.json`, each copied from the public report its `sources`
//! entry names.

use seedling::energy::{match_profile, power_profiles, Confidence, DeviceHints, PowerProfile};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/device_strings.json");

fn devices() -> Vec<Value> {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("device_strings.json is valid JSON");
    fixture["devices"]
        .as_array()
        .expect("device_strings.json has a devices array")
        .clone()
}

fn text<'a>(device: &'a Value, path: &[&str]) -> &'a str {
    let mut value = device;
    for key in path {
        value = &value[*key];
    }
    value
        .as_str()
        .unwrap_or_else(|| panic!("{}: {path:?} is not a string", device["name"]))
}

fn confidence_of(name: &str) -> Confidence {
    serde_json::from_value(Value::String(name.to_string()))
        .unwrap_or_else(|e| panic!("confidence {name:?} is invalid: {e}"))
}

fn profiles() -> Vec<PowerProfile> {
    power_profiles().expect("power_profiles.csv parses and validates")
}

#[test]
fn fixture_covers_enough_devices() {
    assert!(devices().len() >= 8, "{} devices", devices().len());
}

#[test]
fn fixture_hints_have_sources() {
    for device in devices() {
        let name = text(&device, &["name"]);
        let hints = device["hints"].as_object().expect("hints object");
        assert!(!hints.is_empty(), "{name}: no hints");
        for field in hints.keys() {
            let urls = device["sources"][field]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no source for {field}"));
            assert!(!urls.trim().is_empty(), "{name}: empty source for {field}");
            for url in urls.split_whitespace() {
                assert!(url.starts_with("https://"), "{name}: {field} source {url}");
            }
        }
    }
}

#[test]
fn fixture_hints_deserialize() {
    for device in devices() {
        let name = text(&device, &["name"]);
        let hints: DeviceHints = serde_json::from_value(device["hints"].clone())
            .unwrap_or_else(|e| panic!("{name}: hints do not deserialize: {e}"));
        assert_ne!(
            hints,
            DeviceHints::default(),
            "{name}: every hint was dropped"
        );
    }
}

#[test]
fn expected_profiles_exist_in_table() {
    let profiles = profiles();
    for device in devices() {
        let name = text(&device, &["name"]);
        let id = text(&device, &["expected", "profileId"]);
        let profile = profiles
            .iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("{name}: profile {id} is not in power_profiles.csv"));
        assert_eq!(
            profile.class,
            text(&device, &["expected", "class"]),
            "{name}: class of {id}"
        );
    }
}

#[test]
fn browser_strings_match_expected_profiles() {
    let profiles = profiles();
    for device in devices() {
        let name = text(&device, &["name"]);
        let hints: DeviceHints = serde_json::from_value(device["hints"].clone()).unwrap();
        let found = match_profile(&hints, &profiles);

        assert_eq!(
            found.profile_id,
            text(&device, &["expected", "profileId"]),
            "{name}: profile ({})",
            found.reason
        );
        assert_eq!(
            found.class,
            text(&device, &["expected", "class"]),
            "{name}: class"
        );
        assert_eq!(
            found.confidence,
            confidence_of(text(&device, &["expected", "confidence"])),
            "{name}: confidence ({})",
            found.reason
        );
        let mentions = text(&device, &["expected", "reasonMentions"]);
        assert!(
            found.reason.contains(mentions),
            "{name}: reason {:?} does not mention {mentions:?}",
            found.reason
        );
        assert!(
            found.reason.ends_with('.'),
            "{name}: reason {:?}",
            found.reason
        );
    }
}

#[test]
fn firefox_generalised_renderer_never_picks_model() {
    let profiles = profiles();
    let hints = DeviceHints {
        webgl_renderer: Some("Apple M1, or similar".into()),
        ..Default::default()
    };
    let found = match_profile(&hints, &profiles);
    assert_ne!(found.profile_id, "apple-m1");
    assert_eq!(found.confidence, Confidence::Low);
}

#[test]
fn empty_hints_use_server_vcpu_row() {
    let found = match_profile(&DeviceHints::default(), &profiles());
    assert_eq!(found.profile_id, "generic-x86-server-vcpu");
    assert_eq!(found.confidence, Confidence::Low);
    assert_eq!(found.gpu_profile_id, None);
}

#[test]
fn browser_json_hints_deserialize() {
    let json = r#"{
        "webgpuVendor": "nvidia",
        "webgpuArchitecture": "kepler",
        "hardwareConcurrency": 12,
        "deviceMemoryGb": 8
    }"#;
    let hints: DeviceHints = serde_json::from_str(json).unwrap();
    assert_eq!(hints.webgpu_vendor.as_deref(), Some("nvidia"));
    assert_eq!(hints.hardware_concurrency, Some(12));
    assert_eq!(hints.device_memory_gb, Some(8.0));
    assert_eq!(hints.webgl_renderer, None);
}
