//! The JMESPath runtime that compiles class expressions and holds the functions the
//! metered walk ([`super::eval`]) calls: the standard ones, except that the two which
//! can turn a small value into a huge one (`join`, `to_string`, which flatten the shared
//! lists an expression like `[@,@,@,@]` builds) refuse to produce more than
//! [`MAX_RESULT_BYTES`]. Without this, a 360-byte path over `{"a":"x"}` makes 4 GiB.

use std::sync::LazyLock;

use jmespath::functions::Function;

use crate::domain::object_kind::ObjectKind;
use jmespath::{Context, ErrorReason, Expression, JmespathError, Rcvar, Runtime, Variable};

/// Largest string one `join` or `to_string` may build: Secrets Manager's own maximum
/// value, since an extracted value larger than the secret it comes from is no value.
pub const MAX_RESULT_BYTES: usize = ObjectKind::SecretsManager.max_value_bytes();

pub(super) static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut runtime = Runtime::new();
    runtime.register_builtin_functions();
    runtime.register_function("join", Box::new(BoundedJoin));
    runtime.register_function("to_string", Box::new(BoundedToString));
    runtime
});

/// Compiles a class's expression with the bounded runtime.
pub fn compile(expression: &str) -> Result<Expression<'static>, JmespathError> {
    RUNTIME.compile(expression)
}

fn refuse(ctx: &Context<'_>, why: String) -> JmespathError {
    JmespathError::new(ctx.expression, ctx.offset, ErrorReason::Parse(why))
}

fn too_large(ctx: &Context<'_>, function: &str) -> JmespathError {
    refuse(
        ctx,
        format!("{function}() would produce more than {MAX_RESULT_BYTES} bytes"),
    )
}

struct BoundedJoin;

impl Function for BoundedJoin {
    fn evaluate(&self, args: &[Rcvar], ctx: &mut Context<'_>) -> Result<Rcvar, JmespathError> {
        let (Some(glue), Some(values), 2) = (
            args.first().and_then(|a| a.as_string()),
            args.get(1).and_then(|a| a.as_array()),
            args.len(),
        ) else {
            return Err(refuse(
                ctx,
                "join() takes a string and an array of strings".into(),
            ));
        };
        let mut total = 0usize;
        let mut parts = Vec::with_capacity(values.len());
        for value in values {
            let Some(part) = value.as_string() else {
                return Err(refuse(ctx, "join() takes an array of strings".into()));
            };
            total = total
                .saturating_add(part.len())
                .saturating_add(if parts.is_empty() { 0 } else { glue.len() });
            if total > MAX_RESULT_BYTES {
                return Err(too_large(ctx, "join"));
            }
            parts.push(part.as_str());
        }
        Ok(Rcvar::new(Variable::String(parts.join(glue))))
    }
}

struct BoundedToString;

impl Function for BoundedToString {
    fn evaluate(&self, args: &[Rcvar], ctx: &mut Context<'_>) -> Result<Rcvar, JmespathError> {
        let [value] = args else {
            return Err(refuse(ctx, "to_string() takes one argument".into()));
        };
        if value.is_string() {
            return Ok(value.clone());
        }
        let text = crate::domain::json_text::to_json_bounded(value, MAX_RESULT_BYTES)
            .ok_or_else(|| too_large(ctx, "to_string"))?;
        Ok(Rcvar::new(Variable::String(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expression: &str, json: &str) -> Result<Rcvar, JmespathError> {
        let data = Rcvar::new(Variable::from_json(json).unwrap());
        compile(expression).unwrap().search(data)
    }

    #[test]
    fn join_and_to_string_work_as_usual() {
        assert_eq!(
            run("join(',', [a, b])", r#"{"a":"x","b":"y"}"#)
                .unwrap()
                .as_string()
                .unwrap(),
            "x,y"
        );
        assert_eq!(
            run("to_string(n)", r#"{"n":[1,2]}"#)
                .unwrap()
                .as_string()
                .unwrap(),
            "[1,2]"
        );
    }

    #[test]
    fn an_amplifying_expression_is_refused_before_it_allocates() {
        // 16^8 copies of one byte: 4 GiB if built.
        let stage = format!("join('', [{}])", vec!["@"; 16].join(","));
        let path = format!("a | {}", vec![stage; 8].join(" | "));
        let err = run(&path, r#"{"a":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("more than 65536 bytes"), "{err}");
        let lists = format!(
            "to_string(a | {})",
            vec![format!("[{}]", vec!["@"; 16].join(",")); 8].join(" | ")
        );
        let err = run(&lists, r#"{"a":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("more than 65536 bytes"), "{err}");
    }
}
