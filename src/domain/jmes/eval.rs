//! Our own walk of the `jmespath` crate's parsed expression (its AST is public), with
//! the semantics of the crate's interpreter and a [`Meter`] charged before each value
//! is built. The crate's interpreter has no such hook: `[@,@,…]` lists share their
//! elements, so a short expression builds a list of 16⁸ pointers, or compares two of
//! them element by element, before anything could look at its size.

use jmespath::ast::{Ast, Comparator, KeyValuePair};
use jmespath::{Rcvar, Variable};

use super::functions;
use super::meter::Meter;
use super::values::{
    boolean, charge_list, count_nodes, equal, null, EvalError, ENTRY_BYTES, VALUE_BYTES,
};

/// One node of an expression copied into an `&expr` value.
const AST_NODE_BYTES: usize = std::mem::size_of::<Ast>() + 16;

/// Evaluates `node` against `data` within the meter's allowance.
pub fn eval(node: &Ast, data: &Rcvar, meter: &mut Meter) -> Result<Rcvar, EvalError> {
    meter.steps(1)?;
    match node {
        Ast::Identity { .. } => Ok(data.clone()),
        Ast::Literal { value, .. } => Ok(value.clone()),
        Ast::Field { name, .. } => Ok(match &**data {
            Variable::Object(map) => map.get(name).cloned().unwrap_or_else(null),
            _ => null(),
        }),
        Ast::Index { idx, .. } => Ok(index(data, *idx)),
        Ast::Subexpr { lhs, rhs, .. } => {
            let left = eval(lhs, data, meter)?;
            eval(rhs, &left, meter)
        }
        Ast::Or { lhs, rhs, .. } => {
            let left = eval(lhs, data, meter)?;
            if left.is_truthy() {
                Ok(left)
            } else {
                eval(rhs, data, meter)
            }
        }
        Ast::And { lhs, rhs, .. } => {
            let left = eval(lhs, data, meter)?;
            if left.is_truthy() {
                eval(rhs, data, meter)
            } else {
                Ok(left)
            }
        }
        Ast::Not { node, .. } => Ok(boolean(!eval(node, data, meter)?.is_truthy())),
        Ast::Condition {
            predicate, then, ..
        } => {
            if eval(predicate, data, meter)?.is_truthy() {
                eval(then, data, meter)
            } else {
                Ok(null())
            }
        }
        Ast::Comparison {
            comparator,
            lhs,
            rhs,
            ..
        } => {
            let left = eval(lhs, data, meter)?;
            let right = eval(rhs, data, meter)?;
            compare(comparator, &left, &right, meter)
        }
        Ast::ObjectValues { node, .. } => match &*eval(node, data, meter)? {
            Variable::Object(map) => {
                charge_list(meter, map.len())?;
                Ok(Rcvar::new(Variable::Array(map.values().cloned().collect())))
            }
            _ => Ok(null()),
        },
        Ast::Projection { lhs, rhs, .. } => {
            let left = eval(lhs, data, meter)?;
            let Some(elements) = left.as_array() else {
                return Ok(null());
            };
            charge_list(meter, elements.len())?;
            let mut collected = Vec::with_capacity(elements.len());
            for element in elements {
                let found = eval(rhs, element, meter)?;
                if !found.is_null() {
                    collected.push(found);
                }
            }
            Ok(Rcvar::new(Variable::Array(collected)))
        }
        Ast::Flatten { node, .. } => {
            let subject = eval(node, data, meter)?;
            let Some(elements) = subject.as_array() else {
                return Ok(null());
            };
            meter.steps(elements.len() as u64)?;
            let total = elements
                .iter()
                .map(|e| e.as_array().map_or(1, Vec::len))
                .fold(0usize, usize::saturating_add);
            charge_list(meter, total)?;
            let mut collected = Vec::with_capacity(total);
            for element in elements {
                match element.as_array() {
                    Some(inner) => collected.extend(inner.iter().cloned()),
                    None => collected.push(element.clone()),
                }
            }
            Ok(Rcvar::new(Variable::Array(collected)))
        }
        Ast::MultiList { elements, .. } => {
            if data.is_null() {
                return Ok(null());
            }
            charge_list(meter, elements.len())?;
            let mut collected = Vec::with_capacity(elements.len());
            for element in elements {
                collected.push(eval(element, data, meter)?);
            }
            Ok(Rcvar::new(Variable::Array(collected)))
        }
        Ast::MultiHash { elements, .. } => {
            if data.is_null() {
                return Ok(null());
            }
            multi_hash(elements, data, meter)
        }
        Ast::Function { name, args, offset } => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(eval(arg, data, meter)?);
            }
            functions::call(name, *offset, &values, meter, eval)
        }
        Ast::Expref { ast, .. } => {
            let nodes = count_nodes(ast, meter)?;
            meter.bytes(VALUE_BYTES.saturating_add(nodes.saturating_mul(AST_NODE_BYTES)))?;
            Ok(Rcvar::new(Variable::Expref((**ast).clone())))
        }
        Ast::Slice {
            start, stop, step, ..
        } => {
            if *step == 0 {
                return Err(EvalError::Invalid("a slice's step cannot be 0".to_string()));
            }
            let Some(elements) = data.as_array() else {
                return Ok(null());
            };
            charge_list(meter, elements.len())?;
            Ok(Rcvar::new(Variable::Array(slice(
                elements, *start, *stop, *step,
            ))))
        }
    }
}

/// `[start:stop:step]` as the crate computes it, in i64: the crate's own adds the step
/// in i32 and indexes past the end for a step near `i32::MAX`.
fn slice(elements: &[Rcvar], start: Option<i32>, stop: Option<i32>, step: i32) -> Vec<Rcvar> {
    let len = elements.len() as i64;
    let step = i64::from(step);
    if len == 0 {
        return Vec::new();
    }
    let adjust = |end: i64| {
        if end < 0 {
            let from_end = end + len;
            if from_end >= 0 {
                from_end
            } else if step < 0 {
                -1
            } else {
                0
            }
        } else if end < len {
            end
        } else if step < 0 {
            len - 1
        } else {
            len
        }
    };
    let first = match start {
        Some(s) => adjust(i64::from(s)),
        None if step < 0 => len - 1,
        None => 0,
    };
    let last = match stop {
        Some(s) => adjust(i64::from(s)),
        None if step < 0 => -1,
        None => len,
    };
    let mut out = Vec::new();
    let mut i = first;
    while (step > 0 && i < last) || (step < 0 && i > last) {
        if let Some(element) = usize::try_from(i).ok().and_then(|i| elements.get(i)) {
            out.push(element.clone());
        }
        i += step;
    }
    out
}

fn index(data: &Rcvar, idx: i32) -> Rcvar {
    let Variable::Array(elements) = &**data else {
        return null();
    };
    // As the crate does: -1 is the last element, and so is -0 (which parses as 0).
    let at = if idx >= 0 {
        usize::try_from(idx).ok()
    } else {
        let back = usize::try_from(idx.unsigned_abs()).unwrap_or(usize::MAX);
        elements.len().checked_sub(back)
    };
    at.and_then(|i| elements.get(i).cloned())
        .unwrap_or_else(null)
}

fn multi_hash(
    elements: &[KeyValuePair],
    data: &Rcvar,
    meter: &mut Meter,
) -> Result<Rcvar, EvalError> {
    let keys: usize = elements
        .iter()
        .map(|kv| kv.key.len().saturating_add(ENTRY_BYTES))
        .fold(0, usize::saturating_add);
    meter.bytes(VALUE_BYTES.saturating_add(keys))?;
    let mut collected = std::collections::BTreeMap::new();
    for kv in elements {
        let value = eval(&kv.value, data, meter)?;
        collected.insert(kv.key.clone(), value);
    }
    Ok(Rcvar::new(Variable::Object(collected)))
}

fn compare(
    comparator: &Comparator,
    left: &Rcvar,
    right: &Rcvar,
    meter: &mut Meter,
) -> Result<Rcvar, EvalError> {
    Ok(match comparator {
        Comparator::Equal => boolean(equal(left, right, meter)?),
        Comparator::NotEqual => boolean(!equal(left, right, meter)?),
        // Ordering is defined on numbers only (one step: no walk); else null.
        ordering => left.compare(ordering, right).map_or_else(null, boolean),
    })
}
