//! JMESPath for class expressions (spec §5), bounded: expressions compile with the
//! `jmespath` crate's parser, and evaluate with our own metered walk of its AST, so that
//! no expression can allocate or compute beyond what a mount is allowed
//! ([`JmesLimits`]), and a mount's deadline or the provider's shutdown stops it.

mod eval;
mod functions;
mod meter;
mod runtime;
mod values;

use jmespath::{Expression, JmespathError, Rcvar};

pub use meter::{BudgetError, Cancel, CancelOnDrop, JmesLimits, Meter};
pub use runtime::MAX_RESULT_BYTES;
pub use values::EvalError;

/// Compiles a class's expression (syntax only: nothing runs).
pub fn compile(expression: &str) -> Result<Expression<'static>, JmespathError> {
    runtime::compile(expression)
}

/// Evaluates `expression` against `data`, charging `meter`: one evaluation of the mount.
pub fn search(
    expression: &Expression<'_>,
    data: &Rcvar,
    meter: &mut Meter,
) -> Result<Rcvar, EvalError> {
    meter.next_evaluation();
    eval::eval(expression.as_ast(), data, meter)
}

#[cfg(test)]
mod tests;
