//! The metered walk agrees with the `jmespath` crate's interpreter (on the crate's own
//! compliance cases and on generated expressions) and stops every amplification.

use std::path::PathBuf;

use jmespath::{Rcvar, Variable};
use proptest::prelude::*;

use super::*;

fn ours(expression: &str, data: &Rcvar, limits: JmesLimits) -> Result<Rcvar, EvalError> {
    let compiled = compile(expression).expect("compiles");
    search(&compiled, data, &mut Meter::new(limits, Cancel::default()))
}

/// The crate's own interpreter, with the same (bounded) functions.
fn theirs(expression: &str, data: &Rcvar) -> Result<Rcvar, String> {
    let compiled = compile(expression).expect("compiles");
    compiled.search(data.clone()).map_err(|e| e.to_string())
}

fn json(text: &str) -> Rcvar {
    Rcvar::new(Variable::from_json(text).expect("valid JSON"))
}

fn agree(expression: &str, data: &Rcvar) -> Result<(), String> {
    match (
        ours(expression, data, JmesLimits::default()),
        theirs(expression, data),
    ) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Err(EvalError::Invalid(_)), Err(_)) => Ok(()),
        (a, b) => Err(format!("`{expression}`: ours {a:?}, the crate's {b:?}")),
    }
}

/// The crate's compliance suite, from the crate's sources cargo unpacked to build it.
fn compliance_dir() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registry = home.join("registry").join("src");
    std::fs::read_dir(&registry)
        .expect("cargo's registry sources")
        .filter_map(Result::ok)
        .map(|index| index.path().join("jmespath-0.5.0/tests/compliance"))
        .find(|p| p.is_dir())
        .expect("jmespath-0.5.0's compliance cases in cargo's registry")
}

#[test]
fn agrees_with_the_crate_on_its_compliance_cases() {
    let mut checked = 0;
    let mut disagreements = Vec::new();
    for file in std::fs::read_dir(compliance_dir()).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let suites: serde_json::Value = serde_json::from_str(&text).unwrap();
        for suite in suites.as_array().unwrap() {
            let given = Rcvar::new(Variable::try_from(suite["given"].clone()).unwrap());
            for case in suite["cases"].as_array().unwrap() {
                let expression = case["expression"].as_str().unwrap();
                if compile(expression).is_err() {
                    continue; // syntax cases: nothing to evaluate
                }
                checked += 1;
                if let Err(e) = agree(expression, &given) {
                    disagreements.push(e);
                }
            }
        }
    }
    assert!(checked > 500, "only {checked} cases found");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

fn stage(n: usize) -> String {
    format!("[{}][]", vec!["@"; n].join(","))
}

#[test]
fn an_amplifying_list_stops_at_the_byte_allowance() {
    // 16^8 copies of one byte: 32 GiB of pointers if built.
    let path = format!("a | {}", vec![stage(16); 8].join(" | "));
    assert!(path.len() < 1024);
    let err = ours(&path, &json(r#"{"a":"x"}"#), JmesLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::Budget(BudgetError::Bytes { .. })
                | EvalError::Budget(BudgetError::Steps { .. })
        ),
        "{err}"
    );
}

#[test]
fn comparing_two_huge_lists_stops_at_the_step_allowance() {
    // Two lists of 16^9 shared leaves, built separately, compared element by element.
    let side = format!(
        "(@ | {})",
        vec![format!("[{}]", vec!["@"; 16].join(",")); 9].join(" | ")
    );
    let path = format!("[{side}, {side}] | [0] == [1]");
    assert!(path.len() < 1024, "{}", path.len());
    let limits = JmesLimits {
        max_steps: 1_000_000,
        max_bytes: usize::MAX,
    };
    let err = ours(&path, &json(r#"{"a":"x"}"#), limits).unwrap_err();
    assert_eq!(
        err,
        EvalError::Budget(BudgetError::Steps { max: 1_000_000 })
    );
}

#[test]
fn an_expression_function_per_element_is_metered_too() {
    let inner = format!("map(&{}, @)", stage(16));
    let path = format!("[@,@,@,@,@,@,@,@] | {}", vec![inner; 6].join(" | "));
    let err = ours(&path, &json("[1]"), JmesLimits::default()).unwrap_err();
    assert!(matches!(err, EvalError::Budget(_)), "{err}");
}

#[test]
fn a_cancelled_mount_stops_evaluating() {
    let cancel = Cancel::default();
    cancel.cancel();
    let mut meter = Meter::new(
        JmesLimits {
            max_steps: u64::MAX,
            max_bytes: usize::MAX,
        },
        cancel,
    );
    let path = format!("a | {}", vec![stage(16); 5].join(" | "));
    let compiled = compile(&path).unwrap();
    let err = search(&compiled, &json(r#"{"a":"x"}"#), &mut meter).unwrap_err();
    assert_eq!(err, EvalError::Budget(BudgetError::Cancelled));
}

#[test]
fn comparing_long_strings_costs_their_length() {
    // 4,096 copies of one 60 KB string: one `max` would compare 240 MB.
    let list = format!("[{}]", vec!["@"; 16].join(","));
    let path = format!(
        "join('', l) | {list} | {} | {} | max(@)",
        stage(16),
        stage(16)
    );
    let data = json(&format!(r#"{{"l":["{}"]}}"#, "x".repeat(60_000)));
    let err = ours(&path, &data, JmesLimits::default()).unwrap_err();
    assert!(
        matches!(err, EvalError::Budget(BudgetError::Steps { .. })),
        "{err}"
    );
}

#[test]
fn a_slice_with_a_huge_step_is_an_answer_not_a_panic() {
    let data = json("[1,2,3]");
    for path in [
        "[-1::2147483647]",
        "[0::2147483647]",
        "[-2147483647:2147483647:1000000000]",
    ] {
        let found = ours(path, &data, JmesLimits::default()).unwrap();
        assert!(found.is_array(), "{path}");
    }
    assert_eq!(
        ours("[-1::2147483647]", &data, JmesLimits::default()).unwrap(),
        json("[3]")
    );
    agree("[::2]", &data).unwrap();
    agree("[::-1]", &data).unwrap();
    agree("[1:-1]", &data).unwrap();
}

#[test]
fn real_class_expressions_take_few_steps() {
    let secret = json(r#"{"username":"u","password":"p","a":{"b":[{"c":"deep"}]},"l":["x","y"]}"#);
    let mut meter = Meter::uncancelled();
    for path in [
        "username",
        "a.b[0].c",
        "\"password\"",
        "join(',', l)",
        "to_string(a)",
        "keys(@) | sort(@) | join(',', @)",
        "l[?@ == 'y'] | [0]",
        "sort_by(a.b, &c)[0].c",
    ] {
        let compiled = compile(path).unwrap();
        search(&compiled, &secret, &mut meter).unwrap();
        agree(path, &secret).unwrap();
    }
    assert!(meter.steps_taken() < 200, "{}", meter.steps_taken());
}

/// Expressions of a small grammar over the data's keys.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("@".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("`1`".to_string()),
        Just("'x'".to_string()),
        Just("[0]".to_string()),
        Just("[-1]".to_string()),
        Just("[1:]".to_string()),
        Just("*".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.{b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} | {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{{k: {a}, l: {b}}}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) == ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a})[?{b}]")),
            inner.clone().prop_map(|a| format!("({a})[]")),
            inner.clone().prop_map(|a| format!("({a})[*].a")),
            inner.clone().prop_map(|a| format!("length(({a}))")),
            inner.clone().prop_map(|a| format!("map(&({a}), @)")),
            inner.clone().prop_map(|a| format!("contains(@, ({a}))")),
            inner.clone().prop_map(|a| format!("to_string(({a}))")),
            inner
                .clone()
                .prop_map(|a| format!("sort_by(@, &to_string(({a})))")),
            inner
                .clone()
                .prop_map(|a| format!("max_by(@, &length(({a})))")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn data() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-5i64..5).prop_map(serde_json::Value::from),
        "[ax]{0,3}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[ab]", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn agrees_with_the_crate_on_generated_expressions(path in expression(), data in data()) {
        if compile(&path).is_ok() {
            let data = Rcvar::new(Variable::try_from(data).unwrap());
            agree(&path, &data).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn never_exceeds_its_allowance(path in expression(), data in data(), steps in 1u64..200, bytes in 1usize..4096) {
        if let Ok(compiled) = compile(&path) {
            let data = Rcvar::new(Variable::try_from(data).unwrap());
            let limits = JmesLimits { max_steps: steps, max_bytes: bytes };
            let mut meter = Meter::new(limits, Cancel::default());
            match search(&compiled, &data, &mut meter) {
                Ok(_) => {
                    prop_assert!(meter.steps_taken() <= steps);
                    prop_assert!(meter.bytes_built() <= bytes);
                }
                Err(EvalError::Budget(BudgetError::Steps { max })) => prop_assert_eq!(max, steps),
                Err(EvalError::Budget(BudgetError::Bytes { max })) => prop_assert_eq!(max, bytes),
                Err(EvalError::Budget(BudgetError::Cancelled)) => prop_assert!(false, "nothing cancelled"),
                Err(EvalError::Invalid(_)) => {}
            }
        }
    }
}
