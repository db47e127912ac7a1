//! Random `adjective_fish` names for services created without a name (Docker gives these too).

use rand::seq::SliceRandom;

const ADJECTIVES: &[&str] = &[
    "agile",
    "bold",
    "brave",
    "bright",
    "calm",
    "clever",
    "cosmic",
    "curious",
    "daring",
    "deep",
    "eager",
    "fearless",
    "gentle",
    "glowing",
    "happy",
    "hidden",
    "humble",
    "jolly",
    "keen",
    "lively",
    "lucky",
    "mellow",
    "nimble",
    "noble",
    "patient",
    "quick",
    "quiet",
    "rapid",
    "restless",
    "shiny",
    "silent",
    "sleek",
    "steady",
    "swift",
    "tidal",
    "tranquil",
    "vivid",
    "wandering",
    "wild",
    "witty",
];

const FISH: &[&str] = &[
    "anchovy",
    "angelfish",
    "barracuda",
    "bass",
    "blenny",
    "bream",
    "carp",
    "catfish",
    "cod",
    "damselfish",
    "dory",
    "eel",
    "flounder",
    "goby",
    "grouper",
    "guppy",
    "haddock",
    "halibut",
    "herring",
    "koi",
    "mackerel",
    "marlin",
    "minnow",
    "mullet",
    "perch",
    "pike",
    "pollock",
    "pufferfish",
    "salmon",
    "sardine",
    "snapper",
    "sole",
    "sprat",
    "sturgeon",
    "swordfish",
    "tetra",
    "trout",
    "tuna",
    "wrasse",
    "zander",
];

/// A random name like `swift_mackerel`, valid as a service name.
pub fn random_name() -> String {
    let mut rng = rand::thread_rng();
    let a = ADJECTIVES.choose(&mut rng).copied().unwrap_or("quiet");
    let f = FISH.choose(&mut rng).copied().unwrap_or("shoal");
    format!("{a}_{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_service_names() {
        for _ in 0..50 {
            let n = random_name();
            crate::meta::validate_object_name("service", &n).unwrap();
            assert!(n.contains('_'));
        }
    }
}
