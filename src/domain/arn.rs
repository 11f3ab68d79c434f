//! Amazon Resource Names, as far as the provider needs them: the service decides the
//! object type and the region must match the region the object is fetched from.

use super::text::bounded;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a valid ARN (expected arn:partition:service:region:account:resource)", bounded(&.0))]
pub struct ArnError(pub String);

impl Arn {
    /// True when the text claims to be an ARN, so it must then parse as one.
    pub fn looks_like_arn(text: &str) -> bool {
        text.starts_with("arn:")
    }

    pub fn parse(text: &str) -> Result<Arn, ArnError> {
        let mut parts = text.splitn(6, ':');
        let fields: Vec<&str> = parts.by_ref().collect();
        if fields.len() != 6 || fields[0] != "arn" {
            return Err(ArnError(text.to_string()));
        }
        let (partition, service, resource) = (fields[1], fields[2], fields[5]);
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(ArnError(text.to_string()));
        }
        Ok(Arn {
            partition: partition.to_string(),
            service: service.to_string(),
            region: fields[3].to_string(),
            account: fields[4].to_string(),
            resource: resource.to_string(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_secrets_manager_arn() {
        let arn =
            Arn::parse("arn:aws:secretsmanager:us-east-1:123456789012:secret:My-AbCdEf").unwrap();
        assert_eq!(arn.service, "secretsmanager");
        assert_eq!(arn.region, "us-east-1");
        assert_eq!(arn.resource, "secret:My-AbCdEf");
    }

    #[test]
    fn keeps_colons_inside_the_resource() {
        let arn = Arn::parse("arn:aws:ssm:eu-west-1:1:parameter/a:b").unwrap();
        assert_eq!(arn.resource, "parameter/a:b");
    }

    #[test]
    fn rejects_truncated_and_foreign_text() {
        assert!(Arn::parse("arn:aws:secretsmanager:us-east-1").is_err());
        assert!(Arn::parse("urn:aws:ssm:r:a:x").is_err());
        assert!(Arn::parse("arn::ssm:r:a:x").is_err());
        assert!(Arn::parse("arn:aws:ssm:r:a:").is_err());
    }
}
