//! AWS region names, checked once so that nothing odd reaches an endpoint URL.

use super::text::bounded;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region `{}` is not a valid AWS region name (lower-case letters, digits and dashes)", bounded(&.0))]
pub struct RegionError(pub String);

impl Region {
    pub fn parse(text: &str) -> Result<Region, RegionError> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Region(text.to_string()))
        } else {
            Err(RegionError(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The regions one mount reads from: a primary and at most one failover region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    pub primary: Region,
    pub failover: Option<Region>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failoverRegion `{0}` must differ from the primary region")]
pub struct SameRegionError(pub Region);

impl Regions {
    pub fn new(primary: Region, failover: Option<Region>) -> Result<Regions, SameRegionError> {
        if failover.as_ref() == Some(&primary) {
            return Err(SameRegionError(primary));
        }
        Ok(Regions { primary, failover })
    }

    /// The regions in the order they are asked: primary first.
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        std::iter::once(&self.primary).chain(self.failover.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_region_names() {
        for r in ["us-east-1", "us-gov-west-1", "cn-north-1", "eu-central-2"] {
            assert!(Region::parse(r).is_ok(), "{r}");
        }
    }

    #[test]
    fn refuses_odd_text() {
        for r in ["", "US-EAST-1", "us east 1", "us-east-1/../x", "a.b"] {
            assert!(Region::parse(r).is_err(), "{r}");
        }
    }

    #[test]
    fn failover_region_must_differ_from_the_primary() {
        let r = Region::parse("us-east-1").unwrap();
        assert!(Regions::new(r.clone(), Some(r.clone())).is_err());
        let f = Region::parse("us-west-2").unwrap();
        let regions = Regions::new(r, Some(f)).unwrap();
        assert_eq!(regions.iter().count(), 2);
    }
}
