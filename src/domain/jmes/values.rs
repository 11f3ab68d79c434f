//! The values the metered walk builds and what they cost: shared constants, the charge
//! of a new list, deep equality, and the evaluator's signature, which function calls
//! are handed (so that functions that run expressions need not name the walk itself).

use std::sync::LazyLock;

use jmespath::ast::Ast;
use jmespath::{Rcvar, Variable};

use super::meter::{BudgetError, Meter};

/// Bytes one value costs besides its contents: the `Variable` and the shared counts.
pub(super) const VALUE_BYTES: usize = std::mem::size_of::<Variable>() + 16;
/// One element of a list (a shared pointer).
pub(super) const ELEMENT_BYTES: usize = std::mem::size_of::<Rcvar>();
/// One entry of an object besides its key's text (the map's node share and the pointer).
pub(super) const ENTRY_BYTES: usize = 48;
/// Why an expression has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// The expression does not apply to this data (a function given the wrong type,
    /// a zero slice step, an unknown function): JMESPath's own words.
    #[error("{0}")]
    Invalid(String),
}

/// The walk: evaluates an expression against a value within the meter's allowance.
pub(super) type Eval = fn(&Ast, &Rcvar, &mut Meter) -> Result<Rcvar, EvalError>;

static NULL: LazyLock<Rcvar> = LazyLock::new(|| Rcvar::new(Variable::Null));
static TRUE: LazyLock<Rcvar> = LazyLock::new(|| Rcvar::new(Variable::Bool(true)));
static FALSE: LazyLock<Rcvar> = LazyLock::new(|| Rcvar::new(Variable::Bool(false)));

pub(super) fn null() -> Rcvar {
    NULL.clone()
}

pub(super) fn boolean(b: bool) -> Rcvar {
    if b {
        TRUE.clone()
    } else {
        FALSE.clone()
    }
}

/// Charges a new list of `n` elements, before it is built.
pub(super) fn charge_list(meter: &mut Meter, n: usize) -> Result<(), BudgetError> {
    meter.steps(n as u64)?;
    meter.bytes(VALUE_BYTES.saturating_add(n.saturating_mul(ELEMENT_BYTES)))
}

/// Nodes of an expression, one step each (copying it costs as much).
pub(super) fn count_nodes(node: &Ast, meter: &mut Meter) -> Result<usize, BudgetError> {
    meter.steps(1)?;
    let children: Vec<&Ast> = match node {
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. } => vec![lhs, rhs],
        Ast::Condition {
            predicate, then, ..
        } => vec![predicate, then],
        Ast::Expref { ast: node, .. }
        | Ast::Flatten { node, .. }
        | Ast::Not { node, .. }
        | Ast::ObjectValues { node, .. } => vec![node],
        Ast::Function { args, .. } | Ast::MultiList { elements: args, .. } => args.iter().collect(),
        Ast::MultiHash { elements, .. } => elements.iter().map(|kv| &kv.value).collect(),
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => Vec::new(),
    };
    let mut total = 1usize;
    for child in children {
        total = total.saturating_add(count_nodes(child, meter)?);
    }
    Ok(total)
}

/// Deep equality as the crate defines it (numbers within a relative epsilon), one step
/// per pair of values compared. The same shared value is equal to itself at once.
pub(super) fn equal(a: &Rcvar, b: &Rcvar, meter: &mut Meter) -> Result<bool, BudgetError> {
    meter.steps(1)?;
    if Rcvar::ptr_eq(a, b) {
        return Ok(true);
    }
    Ok(match (&**a, &**b) {
        (Variable::Array(x), Variable::Array(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (p, q) in x.iter().zip(y) {
                if !equal(p, q, meter)? {
                    return Ok(false);
                }
            }
            true
        }
        (Variable::Object(x), Variable::Object(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for ((kp, p), (kq, q)) in x.iter().zip(y) {
                meter.steps((kp.len() / 64) as u64)?;
                if kp != kq || !equal(p, q, meter)? {
                    return Ok(false);
                }
            }
            true
        }
        (Variable::String(x), Variable::String(y)) => {
            meter.steps((x.len().min(y.len()) / 64) as u64)?;
            x == y
        }
        // Expressions compare node by node: charged as many steps.
        (Variable::Expref(x), Variable::Expref(_)) => {
            count_nodes(x, meter)?;
            **a == **b
        }
        // Scalars: the crate's rule.
        (x, y) => x == y,
    })
}
