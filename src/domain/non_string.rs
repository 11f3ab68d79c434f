//! `nonString`: what a value found in a JSON secret becomes when it is not a string,
//! for jmesPath files and expanded keys alike.

/// What a jmesPath result that is not a string becomes (`nonString`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonString {
    /// The mount fails naming the path (the existing provider's behaviour).
    #[default]
    Refuse,
    /// Written as compact JSON: numbers and key order as the secret has them.
    Json,
}

impl NonString {
    /// `error` or `json`, case-sensitive like every value of a class.
    pub fn parse(text: &str) -> Option<NonString> {
        match text {
            "error" => Some(NonString::Refuse),
            "json" => Some(NonString::Json),
            _ => None,
        }
    }
}
