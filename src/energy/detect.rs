//! Picks a power profile from what a browser reports about its device.
//!
//! Browsers expose the GPU through the WebGL `UNMASKED_RENDERER_WEBGL` string and WebGPU's
//! `GPUAdapterInfo`, and the platform through `navigator`. Chrome reports the GPU model,
//! for example `ANGLE (Apple, ANGLE Metal Renderer: Apple M2, Unspecified Version)`.
//! Safari reports only `Apple GPU`. Firefox on desktop maps the model to a representative
//! one and appends `, or similar`, so it reports every Apple GPU as `Apple M1, or similar`.
//! A row is matched on a model only from an unmasked string. Otherwise the device class is
//! guessed and its generic row is used.
//!
//! Rows are matched by the rule in their `match` column, for example
//! `renderer~Apple M2(,|\)|$)` or `class=phone`, in the grammar of [`MatchRule`].

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::tables::{PowerProfile, ProfileUnit};

/// Device facts that the page reads from the browser. Every field is optional because
/// browsers fill them unevenly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceHints {
    /// `GPUAdapterInfo.vendor`, for example `apple`, `intel`, `nvidia`, `qualcomm`.
    pub webgpu_vendor: Option<String>,
    /// `GPUAdapterInfo.architecture`, for example `metal-3`, `kepler`, `d-series`.
    pub webgpu_architecture: Option<String>,
    /// The WebGL `UNMASKED_RENDERER_WEBGL` string.
    pub webgl_renderer: Option<String>,
    /// `navigator.platform`, for example `MacIntel`, `Win32`, `Linux x86_64`, `iPhone`.
    pub platform: Option<String>,
    pub user_agent: Option<String>,
    /// `navigator.hardwareConcurrency`.
    pub hardware_concurrency: Option<u32>,
    /// `navigator.deviceMemory`, in GB.
    pub device_memory_gb: Option<f64>,
}

/// How much the evidence supports the chosen row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// The profile chosen for a device and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileMatch {
    /// The row to estimate a CPU run with.
    pub profile_id: String,
    /// The device class the evidence points to.
    pub class: String,
    pub confidence: Confidence,
    /// One sentence naming the evidence.
    pub reason: String,
    /// A GPU-unit row that matched the device. It describes runs on that GPU, so it is kept
    /// apart from `profile_id`, which describes the CPU.
    pub gpu_profile_id: Option<String>,
}

/// One condition of a match rule.
#[derive(Debug, Clone)]
enum Clause {
    /// The WebGL renderer matches, or with `negated` does not match, the pattern.
    Renderer {
        pattern: Regex,
        negated: bool,
    },
    /// The WebGPU vendor equals `vendor` and, if given, the architecture matches.
    WebGpu {
        vendor: String,
        architecture: Option<Regex>,
    },
    Platform(Regex),
    UserAgent(Regex),
}

/// A row's detection rule: clauses separated by `;`, all of which must hold.
///
/// - `renderer~REGEX` and `!renderer~REGEX`: the WebGL renderer matches or does not match.
/// - `webgpu=VENDOR` or `webgpu=VENDOR/REGEX`: the WebGPU vendor, and the architecture.
/// - `platform~REGEX`, `ua~REGEX`: `navigator.platform` and the user agent.
/// - `confidence=medium` or `confidence=low`: caps the confidence of a match, for a GPU
///   family that several devices share.
/// - `class=NAME`: the generic row of a class, used when no other row matches.
/// - `manual`: never matched automatically; chosen by id.
///
/// Patterns are case-insensitive.
#[derive(Debug, Clone)]
pub struct MatchRule {
    clauses: Vec<Clause>,
    generic_class: Option<String>,
    manual: bool,
    confidence_cap: Confidence,
}

impl MatchRule {
    /// Parses a rule, returning a message that names the faulty clause.
    pub fn parse(text: &str) -> Result<MatchRule, String> {
        let mut rule = MatchRule {
            clauses: Vec::new(),
            generic_class: None,
            manual: false,
            confidence_cap: Confidence::High,
        };
        for clause in text.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            rule.add_clause(clause)?;
        }

        let kinds = usize::from(!rule.clauses.is_empty())
            + usize::from(rule.generic_class.is_some())
            + usize::from(rule.manual);
        if kinds != 1 {
            return Err("give detection clauses, or class=NAME alone, or manual alone".to_string());
        }
        Ok(rule)
    }

    fn add_clause(&mut self, clause: &str) -> Result<(), String> {
        if clause == "manual" {
            self.manual = true;
        } else if let Some(class) = clause.strip_prefix("class=") {
            self.generic_class = Some(class.to_string());
        } else if let Some(level) = clause.strip_prefix("confidence=") {
            self.confidence_cap = match level {
                "medium" => Confidence::Medium,
                "low" => Confidence::Low,
                "high" => Confidence::High,
                other => return Err(format!("unknown confidence {other:?}")),
            };
        } else if let Some(pattern) = clause.strip_prefix("!renderer~") {
            self.clauses.push(Clause::Renderer {
                pattern: pattern_of(pattern)?,
                negated: true,
            });
        } else if let Some(pattern) = clause.strip_prefix("renderer~") {
            self.clauses.push(Clause::Renderer {
                pattern: pattern_of(pattern)?,
                negated: false,
            });
        } else if let Some(value) = clause.strip_prefix("webgpu=") {
            let (vendor, architecture) = match value.split_once('/') {
                Some((vendor, architecture)) => (vendor, Some(pattern_of(architecture)?)),
                None => (value, None),
            };
            self.clauses.push(Clause::WebGpu {
                vendor: vendor.to_ascii_lowercase(),
                architecture,
            });
        } else if let Some(pattern) = clause.strip_prefix("platform~") {
            self.clauses.push(Clause::Platform(pattern_of(pattern)?));
        } else if let Some(pattern) = clause.strip_prefix("ua~") {
            self.clauses.push(Clause::UserAgent(pattern_of(pattern)?));
        } else {
            return Err(format!("unknown clause {clause:?}"));
        }
        Ok(())
    }

    /// Returns the class of a `class=NAME` rule, whose row is that class's generic row.
    pub fn generic_class(&self) -> Option<&str> {
        self.generic_class.as_deref()
    }

    fn uses_renderer(&self) -> bool {
        self.clauses
            .iter()
            .any(|c| matches!(c, Clause::Renderer { negated: false, .. }))
    }

    /// Returns whether every clause holds. A rule without clauses never matches.
    fn matches(&self, hints: &Evidence) -> bool {
        !self.clauses.is_empty() && self.clauses.iter().all(|clause| clause.holds(hints))
    }
}

impl Clause {
    fn holds(&self, evidence: &Evidence) -> bool {
        match self {
            Clause::Renderer { pattern, negated } => match &evidence.renderer {
                Some(renderer) => pattern.is_match(renderer) != *negated,
                None => *negated,
            },
            Clause::WebGpu {
                vendor,
                architecture,
            } => {
                evidence.webgpu_vendor.as_deref() == Some(vendor.as_str())
                    && architecture.as_ref().is_none_or(|pattern| {
                        evidence
                            .webgpu_architecture
                            .as_deref()
                            .is_some_and(|a| pattern.is_match(a))
                    })
            }
            Clause::Platform(pattern) => evidence
                .platform
                .as_deref()
                .is_some_and(|p| pattern.is_match(p)),
            Clause::UserAgent(pattern) => evidence
                .user_agent
                .as_deref()
                .is_some_and(|ua| pattern.is_match(ua)),
        }
    }
}

fn pattern_of(text: &str) -> Result<Regex, String> {
    if text.is_empty() {
        return Err("empty pattern".to_string());
    }
    RegexBuilder::new(text)
        .case_insensitive(true)
        .build()
        .map_err(|e| format!("invalid pattern {text:?}: {e}"))
}

/// The hints, trimmed, with the browser's masking noted.
struct Evidence {
    renderer: Option<String>,
    /// Firefox's representative-model renderer ending in `, or similar`.
    renderer_generalised: bool,
    webgpu_vendor: Option<String>,
    webgpu_architecture: Option<String>,
    platform: Option<String>,
    user_agent: Option<String>,
}

impl Evidence {
    fn from_hints(hints: &DeviceHints) -> Evidence {
        let clean = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let renderer = clean(&hints.webgl_renderer);
        let renderer_generalised = renderer
            .as_deref()
            .is_some_and(|r| r.ends_with(", or similar"));
        Evidence {
            renderer,
            renderer_generalised,
            webgpu_vendor: clean(&hints.webgpu_vendor).map(|v| v.to_ascii_lowercase()),
            webgpu_architecture: clean(&hints.webgpu_architecture).map(|a| a.to_ascii_lowercase()),
            platform: clean(&hints.platform),
            user_agent: clean(&hints.user_agent),
        }
    }

    fn is_empty(&self) -> bool {
        self.renderer.is_none()
            && self.webgpu_vendor.is_none()
            && self.platform.is_none()
            && self.user_agent.is_none()
    }
}

/// The class the evidence points to, how strongly, and the sentence that gives the reason.
struct ClassGuess {
    class: &'static str,
    confidence: Confidence,
    reason: String,
}

/// Chooses the profile row for the device the hints describe.
///
/// A row whose rule matches an unmasked renderer or the WebGPU adapter wins, the most
/// specific rule first. A matching GPU-unit row is returned as `gpu_profile_id`, and the
/// CPU run gets the generic row of its class. Otherwise the class is guessed from the GPU
/// family, the WebGPU vendor, the user agent or the platform, and its generic row is used.
/// With no evidence at all, or only a Linux x86-64 platform, the server vCPU row is used.
/// With evidence that names no class, the generic desktop row is used.
pub fn match_profile(hints: &DeviceHints, profiles: &[PowerProfile]) -> ProfileMatch {
    let evidence = Evidence::from_hints(hints);
    let rules: Vec<(&PowerProfile, MatchRule)> = profiles
        .iter()
        .filter_map(|p| MatchRule::parse(&p.match_rule).ok().map(|rule| (p, rule)))
        .collect();

    let specific = rules
        .iter()
        .filter(|(_, rule)| !(evidence.renderer_generalised && rule.uses_renderer()))
        .filter(|(_, rule)| rule.matches(&evidence))
        .max_by_key(|(_, rule)| rule.clauses.len());

    if let Some((profile, rule)) = specific {
        let evidence_text = describe_evidence(&evidence);
        if profile.unit != ProfileUnit::Gpu {
            return ProfileMatch {
                profile_id: profile.id.clone(),
                class: profile.class.clone(),
                confidence: rule.confidence_cap,
                reason: format!("{evidence_text} matches the {} row.", profile.label),
                gpu_profile_id: None,
            };
        }
        let generic = generic_row(&rules, &profile.class);
        return ProfileMatch {
            profile_id: generic.to_string(),
            class: profile.class.clone(),
            confidence: Confidence::Medium.min(rule.confidence_cap),
            reason: format!(
                "{evidence_text} matches the {} row, which describes runs on that GPU, so a CPU run uses the generic {} row.",
                profile.label, profile.class
            ),
            gpu_profile_id: Some(profile.id.clone()),
        };
    }

    match guess_class(&evidence) {
        Some(guess) => ProfileMatch {
            profile_id: generic_row(&rules, guess.class).to_string(),
            class: guess.class.to_string(),
            confidence: guess.confidence,
            reason: guess.reason,
            gpu_profile_id: None,
        },
        None if evidence.is_empty() => ProfileMatch {
            profile_id: generic_row(&rules, "server-vcpu").to_string(),
            class: "server-vcpu".to_string(),
            confidence: Confidence::Low,
            reason: "No device hints were given, so the cloud server vCPU row applies.".to_string(),
            gpu_profile_id: None,
        },
        None => ProfileMatch {
            profile_id: generic_row(&rules, "desktop").to_string(),
            class: "desktop".to_string(),
            confidence: Confidence::Low,
            reason: format!(
                "{} names no known device or class, so the generic desktop row applies.",
                describe_evidence(&evidence)
            ),
            gpu_profile_id: None,
        },
    }
}

/// Returns the id of the generic row of `class`, or of the desktop when the table has none.
fn generic_row<'a>(rules: &'a [(&'a PowerProfile, MatchRule)], class: &str) -> &'a str {
    let find = |wanted: &str| {
        rules
            .iter()
            .find(|(_, rule)| rule.generic_class() == Some(wanted))
            .map(|(profile, _)| profile.id.as_str())
    };
    find(class)
        .or_else(|| find("desktop"))
        .unwrap_or("generic-desktop")
}

fn describe_evidence(evidence: &Evidence) -> String {
    if let Some(renderer) = &evidence.renderer {
        return format!("The WebGL renderer {renderer:?}");
    }
    if let Some(vendor) = &evidence.webgpu_vendor {
        return match &evidence.webgpu_architecture {
            Some(architecture) => {
                format!("The WebGPU adapter (vendor {vendor:?}, architecture {architecture:?})")
            }
            None => format!("The WebGPU adapter (vendor {vendor:?})"),
        };
    }
    if let Some(platform) = &evidence.platform {
        return format!("The platform {platform:?}");
    }
    match &evidence.user_agent {
        Some(ua) => format!("The user agent {ua:?}"),
        None => "The empty hints".to_string(),
    }
}

/// Guesses the device class from, in order, the user agent, the WebGL renderer, the WebGPU
/// vendor and the platform.
fn guess_class(evidence: &Evidence) -> Option<ClassGuess> {
    let contains = |text: &Option<String>, needle: &str| {
        text.as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains(needle))
    };
    let platform = evidence.platform.as_deref().unwrap_or("");
    let windows = platform.starts_with("Win") || contains(&evidence.user_agent, "windows nt");
    let mac = platform.starts_with("Mac") || contains(&evidence.user_agent, "macintosh");
    let guess = |class, confidence, reason: String| {
        Some(ClassGuess {
            class,
            confidence,
            reason,
        })
    };

    // The user agent and platform name phones and tablets outright.
    if platform == "iPhone" || contains(&evidence.user_agent, "iphone") {
        return guess(
            "phone",
            Confidence::Medium,
            "The platform or user agent names an iPhone, and Safari hides the model, so the generic phone row applies.".into(),
        );
    }
    if platform == "iPad" || contains(&evidence.user_agent, "ipad") {
        return guess(
            "tablet",
            Confidence::Medium,
            "The platform or user agent names an iPad, so the generic tablet row applies.".into(),
        );
    }
    if contains(&evidence.user_agent, "android") {
        let (class, name) = if contains(&evidence.user_agent, "mobile") {
            ("phone", "phone")
        } else {
            ("tablet", "tablet")
        };
        return guess(
            class,
            Confidence::Medium,
            format!("The user agent names an Android {name}, so the generic {name} row applies."),
        );
    }

    if let Some(renderer) = &evidence.renderer {
        if let Some(found) =
            class_of_renderer(renderer, evidence.renderer_generalised, windows, mac)
        {
            return Some(found);
        }
    }
    if let Some(vendor) = &evidence.webgpu_vendor {
        if let Some(found) = class_of_webgpu_vendor(vendor, windows) {
            return Some(found);
        }
    }

    match platform {
        "Linux x86_64" if evidence.renderer.is_none() && evidence.webgpu_vendor.is_none() => {
            guess(
                "server-vcpu",
                Confidence::Low,
                "The platform is \"Linux x86_64\" with no GPU reported, as on a cloud virtual machine, so the server vCPU row applies.".into(),
            )
        }
        p if p.starts_with("Mac") => guess(
            "laptop",
            Confidence::Low,
            format!("The platform {p:?} names a Mac but not its chip, so the generic laptop row applies."),
        ),
        _ => None,
    }
}

fn class_of_renderer(
    renderer: &str,
    generalised: bool,
    windows: bool,
    mac: bool,
) -> Option<ClassGuess> {
    let lower = renderer.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    let strength = if generalised {
        Confidence::Low
    } else {
        Confidence::Medium
    };
    let quoted = if generalised {
        format!("Firefox's generalised WebGL renderer {renderer:?}")
    } else {
        format!("The WebGL renderer {renderer:?}")
    };
    let guess = |class: &'static str, confidence, what: &str| {
        Some(ClassGuess {
            class,
            confidence,
            reason: format!("{quoted} names {what}, so the generic {class} row applies."),
        })
    };

    if has("swiftshader") || has("llvmpipe") || has("microsoft basic render driver") {
        return Some(ClassGuess {
            class: "server-vcpu",
            confidence: Confidence::Low,
            reason: format!(
                "{quoted} is a software renderer, as on a machine without a GPU, so the server vCPU row applies."
            ),
        });
    }
    if lower == "apple gpu" {
        let class = if mac { "laptop" } else { "phone" };
        return Some(ClassGuess {
            class,
            confidence: Confidence::Low,
            reason: format!(
                "Safari reports only \"Apple GPU\", which hides the chip, so the generic {class} row applies."
            ),
        });
    }
    if has("apple") {
        return guess(
            "laptop",
            Confidence::Low,
            "an Apple chip without a row of its own, and most Macs are laptops",
        );
    }
    if has("v3d") || has("videocore") || has("broadcom") {
        return guess("sbc", strength, "a Raspberry Pi GPU");
    }
    if has("tegra") || has("orin") {
        return guess("sbc", strength, "an NVIDIA Jetson GPU");
    }
    if has("adreno") || has("mali") || has("xclipse") || has("powervr") || has("immortalis") {
        if windows {
            return guess("laptop", strength, "a mobile GPU on Windows");
        }
        return guess("phone", strength, "a phone GPU");
    }
    if has("intel") {
        let discrete = Regex::new(r"(?i)arc\(tm\) a\d{3}|arc a\d{3}")
            .expect("valid pattern")
            .is_match(renderer);
        if discrete {
            return guess("desktop", strength, "an Intel Arc discrete GPU");
        }
        return guess("laptop", strength, "an Intel integrated GPU");
    }
    if has("nvidia") || has("geforce") || has("quadro") || has("rtx") {
        if has("laptop") || has("max-q") || has(" mx") {
            return guess("laptop", strength, "an NVIDIA laptop GPU");
        }
        return guess("desktop", strength, "an NVIDIA GPU");
    }
    if has("radeon") || has("amd") {
        let integrated = Regex::new(r"(?i)radeon(\(tm\))? (graphics|\d{3}m|vega \d+)")
            .expect("valid pattern")
            .is_match(renderer);
        if integrated && !generalised {
            return guess("laptop", strength, "an AMD integrated GPU");
        }
        return guess("desktop", strength, "an AMD GPU");
    }
    None
}

fn class_of_webgpu_vendor(vendor: &str, windows: bool) -> Option<ClassGuess> {
    let (class, what) = match vendor {
        "apple" => (
            "laptop",
            "an Apple GPU, which could be any Mac, iPhone or iPad",
        ),
        "qualcomm" | "arm" | "img-tec" | "samsung" if windows => {
            ("laptop", "a mobile GPU vendor on Windows")
        }
        "qualcomm" | "arm" | "img-tec" | "samsung" => ("phone", "a phone GPU vendor"),
        "intel" => ("laptop", "Intel, whose GPUs are mostly integrated"),
        "nvidia" | "amd" => ("desktop", "a discrete GPU vendor"),
        "google" | "mesa" => ("server-vcpu", "a software adapter"),
        _ => return None,
    };
    Some(ClassGuess {
        class,
        confidence: Confidence::Low,
        reason: format!(
            "The WebGPU vendor {vendor:?} names {what}, so the generic {class} row applies."
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::tables::power_profiles;

    fn hints_with_renderer(renderer: &str) -> DeviceHints {
        DeviceHints {
            webgl_renderer: Some(renderer.to_string()),
            ..DeviceHints::default()
        }
    }

    #[test]
    fn rule_grammar_parses() {
        let rule =
            MatchRule::parse(r"renderer~RTX 3060;!renderer~Laptop;confidence=medium").unwrap();
        assert_eq!(rule.clauses.len(), 2);
        assert_eq!(rule.confidence_cap, Confidence::Medium);
        assert_eq!(
            MatchRule::parse("class=phone").unwrap().generic_class(),
            Some("phone")
        );
        assert!(MatchRule::parse("manual").unwrap().manual);
    }

    #[test]
    fn rule_grammar_rejects_mixtures_and_typos() {
        assert!(MatchRule::parse("").is_err());
        assert!(MatchRule::parse("class=phone;renderer~Adreno").is_err());
        assert!(MatchRule::parse("render~Adreno").is_err());
        assert!(MatchRule::parse("renderer~(").is_err());
        assert!(MatchRule::parse("renderer~x;confidence=sure").is_err());
    }

    #[test]
    fn negated_clause_excludes_laptop_part() {
        let profiles = power_profiles().unwrap();
        let desktop = match_profile(
            &hints_with_renderer(
                "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)",
            ),
            &profiles,
        );
        assert_eq!(desktop.gpu_profile_id.as_deref(), Some("desktop-rtx-3060"));
        let laptop = match_profile(
            &hints_with_renderer("ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Laptop GPU Direct3D11 vs_5_0 ps_5_0, D3D11)"),
            &profiles,
        );
        assert_eq!(laptop.gpu_profile_id, None);
        assert_eq!(laptop.class, "laptop");

        let laptop_4090 = match_profile(
            &hints_with_renderer("ANGLE (NVIDIA, NVIDIA GeForce RTX 4090 Laptop GPU Direct3D11 vs_5_0 ps_5_0, D3D11)"),
            &profiles,
        );
        assert_eq!(laptop_4090.gpu_profile_id, None);
        assert_eq!(laptop_4090.class, "laptop");
    }

    #[test]
    fn generalised_renderer_never_matches_model() {
        let profiles = power_profiles().unwrap();
        let found = match_profile(&hints_with_renderer("Apple M1, or similar"), &profiles);
        assert_eq!(found.profile_id, "generic-laptop");
        assert_eq!(found.confidence, Confidence::Low);
    }

    #[test]
    fn empty_hints_use_server_vcpu() {
        let profiles = power_profiles().unwrap();
        let found = match_profile(&DeviceHints::default(), &profiles);
        assert_eq!(found.profile_id, "generic-x86-server-vcpu");
    }

    #[test]
    fn unknown_evidence_uses_desktop() {
        let profiles = power_profiles().unwrap();
        let found = match_profile(&hints_with_renderer("Some Future GPU 9000"), &profiles);
        assert_eq!(found.profile_id, "generic-desktop");
        assert_eq!(found.confidence, Confidence::Low);
        assert!(
            found.reason.contains("Some Future GPU 9000"),
            "{}",
            found.reason
        );
    }

    #[test]
    fn hints_deserialize_camel_case() {
        let hints: DeviceHints = serde_json::from_str(
            r#"{"webgpuVendor":"apple","webgpuArchitecture":"metal-3","hardwareConcurrency":8,"deviceMemoryGb":8}"#,
        )
        .unwrap();
        assert_eq!(hints.webgpu_vendor.as_deref(), Some("apple"));
        assert_eq!(hints.hardware_concurrency, Some(8));
        assert_eq!(hints.device_memory_gb, Some(8.0));
        assert_eq!(hints.webgl_renderer, None);
    }
}
