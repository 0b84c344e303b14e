//! Property tests over the selector and duration parsers: whatever text a
//! request carries (`?labelSelector=`, `?fieldSelector=`, a `timeout:`), they
//! return a value or a typed error, never panic, and what they print they
//! read back the same.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::Value;
use sloth_sdk::duration::Duration;
use sloth_sdk::selector::{Fields, Labels, field_text};

const CASES: u32 = 512;

/// A modest case count, and no regression files written into the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text made mostly of the characters the selector grammar cares about, so
/// that generated strings reach deep into the parser instead of failing on
/// the first character.
fn selector_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("app".to_string()),
        Just("x.y/z".to_string()),
        Just("=".to_string()),
        Just("==".to_string()),
        Just("!=".to_string()),
        Just("!".to_string()),
        Just(",".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(" ".to_string()),
        Just(" in ".to_string()),
        Just(" notin ".to_string()),
        Just("web".to_string()),
        Just("é".to_string()),
        "[a-z0-9._/-]{0,4}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|parts| parts.concat())
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-z.]{0,4}|app|x.y/z", "[a-z=()]{0,4}|web", 0..5)
}

/// JSON values of bounded depth, for matching field selectors against.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z=.]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("spec|status|a|b|[a-z]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn label_selector_parse_never_panics_on_arbitrary_strings(input in any::<String>()) {
        let _ = Labels::parse(&input);
    }

    #[test]
    fn label_selector_parse_display_round_trips_and_matching_never_panics(
        input in selector_text(),
        labels in label_map(),
    ) {
        if let Ok(parsed) = Labels::parse(&input) {
            let printed = parsed.to_string();
            let reparsed = Labels::parse(&printed);
            prop_assert_eq!(
                reparsed.as_ref(),
                Ok(&parsed),
                "{:?} printed as {:?}",
                input,
                printed
            );
            let _ = parsed.matches(&labels);
        }
    }

    #[test]
    fn field_selector_parse_and_match_never_panic(
        input in prop_oneof![any::<String>(), selector_text()],
        object in json_value(),
    ) {
        if let Ok(parsed) = Fields::parse(&input) {
            let _ = parsed.matches(&object);
            let _ = parsed.required_value("spec.agentName");
        }
        let _ = field_text(&object, &input);
    }

    #[test]
    fn duration_parse_never_panics_on_arbitrary_strings(
        input in prop_oneof![
            any::<String>(),
            "[0-9.]{0,25}(ns|us|µs|ms|s|m|h|d|x)?([0-9.]{0,25}(ns|us|µs|ms|s|m|h|d))?",
        ],
    ) {
        let _ = input.parse::<Duration>();
        let _ = sloth_sdk::duration::parse_flag(&input);
    }

    #[test]
    fn duration_display_parses_back_to_the_same_duration(
        secs in 0u64..=30 * 86400,
        millis in 0u32..1000,
    ) {
        // Whole seconds, and whole milliseconds below one second, print exactly.
        for d in [
            std::time::Duration::from_secs(secs),
            std::time::Duration::from_millis(u64::from(millis)),
        ] {
            let printed = Duration(d).to_string();
            let parsed = printed.parse::<Duration>();
            prop_assert_eq!(parsed, Ok(Duration(d)), "printed as {:?}", printed);
        }
    }
}

#[test]
fn huge_selectors_are_parsed_in_linear_time_without_panicking() {
    let many_terms = vec!["app=web"; 50_000].join(",");
    assert_eq!(
        Labels::parse(&many_terms)
            .expect("many terms parse")
            .to_string(),
        many_terms
    );
    let deep = "(".repeat(100_000) + &")".repeat(100_000);
    assert!(Labels::parse(&deep).is_err());
    let deep_fields = "a.".repeat(100_000) + "=x";
    let fields = Fields::parse(&deep_fields).expect("a long path is one term");
    assert!(!fields.matches(&serde_json::json!({"a": {"a": "x"}})));
}
