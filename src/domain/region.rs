//! AWS region names, checked once so that nothing odd reaches an endpoint URL and a
//! class cannot make the provider build clients for endless made-up regions: a name
//! must have the form of a region of one of AWS's partitions (`us-east-1`,
//! `us-gov-west-1`, `cn-north-1`, ...). The regions AWS lists today are known by name;
//! a well-formed name not among them (a region opened after this release) is accepted,
//! and the AWS adapter keeps few clients for such names at once.

use super::text::bounded;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region `{}` is not an AWS region name: expected <area>-<place>-<number> of an AWS partition, such as us-east-1, us-gov-west-1 or cn-north-1", bounded(&.0))]
pub struct RegionError(pub String);

/// The longest region name accepted; the longest AWS has is 14 characters.
const MAX_LEN: usize = 32;

/// The leading parts of the region names of AWS's partitions (aws, aws-cn, aws-us-gov,
/// aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc), from the SDK's partition rules.
const PARTITION_PREFIXES: &[&str] = &[
    "us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn", "us-gov", "us-iso", "us-isob",
    "us-isof", "eu-isoe", "eusc-de",
];

/// The regions of AWS's partitions as the SDK of this release lists them.
const LISTED: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "cn-north-1",
    "cn-northwest-1",
    "eusc-de-east-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "eu-isoe-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// True for the name of a region AWS lists today.
pub fn is_listed(name: &str) -> bool {
    LISTED.contains(&name)
}

/// True when `text` has the form of a region of a partition: a partition's prefix,
/// one word of lower-case letters or digits, and a number of at most three digits.
fn well_formed(text: &str) -> bool {
    if text.is_empty() || text.len() > MAX_LEN {
        return false;
    }
    let Some((rest, number)) = text.rsplit_once('-') else {
        return false;
    };
    let Some((prefix, place)) = rest.rsplit_once('-') else {
        return false;
    };
    let number_ok = (1..=3).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit());
    let place_ok = !place.is_empty()
        && place
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    number_ok && place_ok && PARTITION_PREFIXES.contains(&prefix)
}

impl Region {
    pub fn parse(text: &str) -> Result<Region, RegionError> {
        if well_formed(text) {
            Ok(Region(text.to_string()))
        } else {
            Err(RegionError(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the regions AWS lists today; false for a well-formed name it does not
    /// (a newer region, or a made-up one).
    pub fn is_listed(&self) -> bool {
        is_listed(&self.0)
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
    fn every_listed_region_parses_and_is_listed() {
        for r in LISTED {
            assert!(Region::parse(r).is_ok_and(|r| r.is_listed()), "{r}");
        }
    }

    #[test]
    fn a_newer_region_of_a_partition_parses_but_is_not_listed() {
        for r in [
            "us-north-1",
            "ap-southeast-12",
            "eusc-de-west-2",
            "us-gov-south-1",
        ] {
            let region = Region::parse(r).unwrap();
            assert!(!region.is_listed(), "{r}");
        }
    }

    #[test]
    fn names_outside_every_partition_are_refused_naming_the_region() {
        for r in [
            "zz-made-up-9",
            "local",
            "us-east",
            "us-east-1234",
            "us--1",
            "in-us-east-1",
            "us-verylongplacenamefortheattack-1",
            "aws-global",
        ] {
            let err = Region::parse(r).unwrap_err();
            assert!(err.to_string().contains(&format!("`{r}`")), "{err}");
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
