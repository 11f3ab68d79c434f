//! Function calls within the metered walk. The five functions that walk values or run
//! expressions per element (`map`, `sort_by`, `min_by`, `max_by`, `contains`) are ours,
//! metered step by step, with the crate's semantics; the crate's own versions would
//! call its unmetered interpreter. Every other function is the crate's (with our bounded
//! `join` and `to_string`), called once its worst case is charged: none of them builds
//! more than its arguments' size, or sorts more than their length.

use std::cmp::Ordering;

use jmespath::ast::Ast;
use jmespath::{Context, Rcvar, Variable};

use super::meter::Meter;
use super::runtime::RUNTIME;
use super::values::{
    boolean, charge_list, equal, null, Eval, EvalError, ELEMENT_BYTES, ENTRY_BYTES, VALUE_BYTES,
};

/// Calls `name` on its evaluated arguments; functions that run an expression per
/// element run it with `eval`.
pub(super) fn call(
    name: &str,
    offset: usize,
    args: &[Rcvar],
    meter: &mut Meter,
    eval: Eval,
) -> Result<Rcvar, EvalError> {
    match name {
        "map" => map(args, meter, eval),
        "sort_by" => sort_by(args, meter, eval),
        "max_by" => best_by(args, meter, eval, Ordering::Greater, "max_by"),
        "min_by" => best_by(args, meter, eval, Ordering::Less, "min_by"),
        "contains" => contains(args, meter),
        _ => builtin(name, offset, args, meter),
    }
}

fn invalid(text: String) -> EvalError {
    EvalError::Invalid(text)
}

fn expression_and_list<'a>(
    name: &str,
    expression: Option<&'a Rcvar>,
    list: Option<&'a Rcvar>,
    arity: usize,
) -> Result<(&'a Ast, &'a [Rcvar]), EvalError> {
    if arity != 2 {
        return Err(invalid(format!("{name}() takes 2 arguments, not {arity}")));
    }
    match (
        expression.and_then(|e| e.as_expref()),
        list.and_then(|l| l.as_array()),
    ) {
        (Some(ast), Some(elements)) => Ok((ast, elements)),
        _ => Err(invalid(format!(
            "{name}() takes an array and an expression (&...)"
        ))),
    }
}

/// `map(&expr, array)`: the expression on every element, nulls kept.
fn map(args: &[Rcvar], meter: &mut Meter, eval: Eval) -> Result<Rcvar, EvalError> {
    let (ast, elements) = expression_and_list("map", args.first(), args.get(1), args.len())?;
    charge_list(meter, elements.len())?;
    let mut out = Vec::with_capacity(elements.len());
    for element in elements {
        out.push(eval(ast, element, meter)?);
    }
    Ok(Rcvar::new(Variable::Array(out)))
}

/// The expression's value for every element: all strings or all numbers.
fn keys(
    name: &str,
    ast: &Ast,
    elements: &[Rcvar],
    meter: &mut Meter,
    eval: Eval,
) -> Result<Vec<Rcvar>, EvalError> {
    charge_list(meter, elements.len())?;
    let mut keys: Vec<Rcvar> = Vec::with_capacity(elements.len());
    for element in elements {
        let key = eval(ast, element, meter)?;
        let same = match keys.first() {
            None => key.is_string() || key.is_number(),
            Some(first) => first.get_type() == key.get_type(),
        };
        if !same {
            return Err(invalid(format!(
                "{name}(): the expression must give all strings or all numbers, and gave {}",
                key.get_type()
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// `sort_by(array, &expr)`: stable, by the expression's value.
fn sort_by(args: &[Rcvar], meter: &mut Meter, eval: Eval) -> Result<Rcvar, EvalError> {
    let (ast, elements) = expression_and_list("sort_by", args.get(1), args.first(), args.len())?;
    let keys = keys("sort_by", ast, elements, meter, eval)?;
    charge_sort(meter, elements.len(), longest(&keys))?;
    charge_list(meter, elements.len())?;
    let mut order: Vec<usize> = (0..elements.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    Ok(Rcvar::new(Variable::Array(
        order.into_iter().map(|i| elements[i].clone()).collect(),
    )))
}

/// `max_by` / `min_by`: the first element whose key no later one beats; null when empty.
fn best_by(
    args: &[Rcvar],
    meter: &mut Meter,
    eval: Eval,
    wins: Ordering,
    name: &str,
) -> Result<Rcvar, EvalError> {
    let (ast, elements) = expression_and_list(name, args.get(1), args.first(), args.len())?;
    let keys = keys(name, ast, elements, meter, eval)?;
    meter.steps((keys.len() as u64).saturating_mul(1 + (longest(&keys) / 64) as u64))?;
    let mut best: Option<usize> = None;
    for (i, key) in keys.iter().enumerate() {
        if best.is_none_or(|b| key.cmp(&keys[b]) == wins) {
            best = Some(i);
        }
    }
    Ok(best.map_or_else(null, |i| elements[i].clone()))
}

/// `contains(array|string, any)`: deep equality with every element, or a substring.
fn contains(args: &[Rcvar], meter: &mut Meter) -> Result<Rcvar, EvalError> {
    let [haystack, needle] = args else {
        return Err(invalid(format!(
            "contains() takes 2 arguments, not {}",
            args.len()
        )));
    };
    match &**haystack {
        Variable::Array(elements) => {
            for element in elements {
                if equal(element, needle, meter)? {
                    return Ok(boolean(true));
                }
            }
            Ok(boolean(false))
        }
        Variable::String(text) => {
            meter.steps(1 + (text.len() / 64) as u64)?;
            Ok(boolean(
                needle
                    .as_string()
                    .is_some_and(|n| text.contains(n.as_str())),
            ))
        }
        _ => Err(invalid(
            "contains() takes an array or a string first".to_string(),
        )),
    }
}

/// Steps of a comparison sort of `n` elements: `n·log n` comparisons, each as many
/// steps as the longest string compared takes (64 bytes a step).
fn charge_sort(meter: &mut Meter, n: usize, longest: usize) -> Result<(), EvalError> {
    let log = usize::BITS - n.leading_zeros();
    let per_comparison = 1 + (longest / 64) as u64;
    meter.steps(
        (n as u64)
            .saturating_mul(u64::from(log.max(1)))
            .saturating_mul(per_comparison),
    )?;
    Ok(())
}

/// The longest string among `values` (the cost of one comparison between them).
fn longest(values: &[Rcvar]) -> usize {
    values
        .iter()
        .map(|v| v.as_string().map_or(0, String::len))
        .max()
        .unwrap_or(0)
}

/// What an argument holds at its top level: elements, entries and their keys, or text.
fn top_level_bytes(value: &Variable) -> (usize, usize) {
    match value {
        Variable::Array(a) => (a.len(), a.len().saturating_mul(ELEMENT_BYTES)),
        Variable::Object(o) => (
            o.len(),
            o.keys()
                .map(|k| {
                    k.len()
                        .saturating_add(ENTRY_BYTES)
                        .saturating_add(VALUE_BYTES)
                })
                .fold(0, usize::saturating_add),
        ),
        Variable::String(s) => (s.len() / 64, s.len()),
        _ => (0, 0),
    }
}

/// The crate's function, once its worst case is charged: at most a sort of its
/// arguments' elements, and a result no larger than its arguments' top levels; `join`
/// is charged its exact text, `to_string` what it wrote (its writer stops at
/// `MAX_RESULT_BYTES`).
fn builtin(
    name: &str,
    offset: usize,
    args: &[Rcvar],
    meter: &mut Meter,
) -> Result<Rcvar, EvalError> {
    let (mut elements, mut bytes, mut longest_string) = (0usize, VALUE_BYTES, 0usize);
    for arg in args {
        // `sort`, `max`, `min` compare strings: their cost grows with the longest.
        if let Some(values) = arg.as_array() {
            meter.steps(values.len() as u64)?;
            longest_string = longest_string.max(longest(values));
        }
        let (n, b) = top_level_bytes(arg);
        elements = elements.saturating_add(n);
        bytes = bytes.saturating_add(b);
    }
    if let ("join", [glue, parts]) = (name, args) {
        // The joined text, exactly: the parts and a glue between each two.
        let glue = glue.as_string().map_or(0, String::len);
        let parts = parts.as_array().map_or(&[][..], Vec::as_slice);
        let text = parts
            .iter()
            .map(|p| p.as_string().map_or(0, String::len).saturating_add(glue))
            .fold(0usize, usize::saturating_add);
        bytes = bytes.saturating_add(text);
        meter.steps((text / 64) as u64)?;
    }
    charge_sort(meter, elements, longest_string)?;
    meter.bytes(bytes)?;
    let Some(function) = RUNTIME.get_function(name) else {
        return Err(invalid(format!("unknown function {name}()")));
    };
    let mut ctx = Context::new("", &RUNTIME);
    ctx.offset = offset;
    let result = function.evaluate(args, &mut ctx).map_err(|e| {
        invalid(
            e.reason
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .to_string(),
        )
    })?;
    if name == "to_string" {
        // Its length is known only once written; the writer itself stops at
        // MAX_RESULT_BYTES, so this charge comes after at most that much work.
        let written = result.as_string().map_or(0, String::len);
        meter.steps((written / 64) as u64)?;
        meter.bytes(written)?;
    }
    Ok(result)
}
