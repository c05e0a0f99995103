//! Device energy and carbon estimates from measured time, a power profile and a grid intensity.
//!
//! Every figure comes from a data file under `data/energy/` whose rows carry a source
//! and a date; the files are compiled into the crate so the page and the CLI use the
//! same numbers.

pub mod detect;
pub mod ecologits;
pub mod equivalents;
pub mod estimate;
pub mod grid;
pub mod one_off;
pub mod tables;

pub use detect::{match_profile, Confidence, DeviceHints, MatchRule, ProfileMatch};
pub use ecologits::{HostedImpacts, HostedRequest, ModelSize};
pub use estimate::{estimate_device, Band, DeviceEnergy};
pub use tables::{
    grid_intensities, power_profiles, published_figures, GridIntensity, PowerProfile, ProfileKind,
    ProfileUnit, PublishedFigure, PROFILE_CLASSES,
};
