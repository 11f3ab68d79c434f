//! A SecretProviderClass checked as a whole: its objects against the attributes their
//! rules read (path translation, regions) and the provider's bounds. The mount, the
//! `validate` command and the fuzz targets all check a class here, so the three cannot
//! drift apart. Nothing here asks anyone: a primary region that only the pod's node
//! knows is applied after the check ([`CheckedClass::in_region`]).

use super::attributes::MountAttributes;
use super::mode::FileMode;
use super::naming::PathTranslation;
use super::objects::{
    check_primary_region, parse_objects, ClassContext, ClassErrors, ParsedObjects, YamlLimits,
};
use super::region::{Region, Regions, SameRegionError};

/// What a class's objects are checked against.
#[derive(Debug, Clone)]
pub struct ClassSpec<'a> {
    /// The `objects` YAML.
    pub objects: &'a str,
    pub translation: PathTranslation,
    /// The primary region when it is known without asking anyone: the class's `region`,
    /// else the provider's own (or `validate --region`). When it is not, the ARN-region
    /// rule of the primary waits for [`CheckedClass::in_region`].
    pub region: Option<Region>,
    pub failover_region: Option<Region>,
}

/// The provider's side of a check.
#[derive(Debug, Clone, Copy)]
pub struct ClassRules {
    /// The mode of files whose object sets no filePermission.
    pub default_mode: FileMode,
    pub limits: YamlLimits,
    /// Unknown keys are errors instead of warnings.
    pub strict: bool,
    /// `objectType: acm` is served (the operator's opt-in: an export hands out a key).
    pub certificates: bool,
}

impl Default for ClassRules {
    fn default() -> Self {
        ClassRules {
            default_mode: FileMode::DEFAULT,
            limits: YamlLimits::default(),
            strict: false,
            certificates: false,
        }
    }
}

/// Why a class was refused: its regions, or its objects (every broken rule of every
/// object at once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassError {
    #[error(transparent)]
    SameRegions(#[from] SameRegionError),
    #[error(transparent)]
    Objects(#[from] ClassErrors),
}

/// A class that passed every rule that could be checked.
#[derive(Debug, Clone)]
pub struct CheckedClass {
    pub parsed: ParsedObjects,
    /// The regions, when the primary was known at the check.
    pub regions: Option<Regions>,
    failover_region: Option<Region>,
}

impl<'a> ClassSpec<'a> {
    /// The class a mount's attributes hold; `fallback_region` stands for the primary when
    /// the class names none.
    pub fn of(attributes: &'a MountAttributes, fallback_region: Option<&Region>) -> Self {
        ClassSpec {
            objects: &attributes.objects,
            translation: attributes.translation,
            region: attributes
                .region
                .clone()
                .or_else(|| fallback_region.cloned()),
            failover_region: attributes.failover_region.clone(),
        }
    }

    /// The regions first (a failover region that is the primary refuses the class by
    /// itself), then every rule of every object.
    pub fn check(&self, rules: &ClassRules) -> Result<CheckedClass, ClassError> {
        let regions = self
            .region
            .clone()
            .map(|primary| Regions::new(primary, self.failover_region.clone()))
            .transpose()?;
        let ctx = ClassContext {
            translation: self.translation,
            default_mode: rules.default_mode,
            primary_region: self.region.as_ref(),
            failover_region: self.failover_region.as_ref(),
            limits: rules.limits,
            strict: rules.strict,
            certificates: rules.certificates,
        };
        Ok(CheckedClass {
            parsed: parse_objects(self.objects, &ctx)?,
            regions,
            failover_region: self.failover_region.clone(),
        })
    }
}

impl CheckedClass {
    /// The regions with a primary learned after the check (the pod's node's), and the
    /// rules that needed it.
    pub fn in_region(&self, primary: Region) -> Result<Regions, ClassError> {
        let regions = Regions::new(primary, self.failover_region.clone())?;
        check_primary_region(&self.parsed.objects, &regions.primary)?;
        Ok(regions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(objects: &'a str, region: Option<&str>, failover: Option<&str>) -> ClassSpec<'a> {
        ClassSpec {
            objects,
            translation: PathTranslation::default(),
            region: region.map(|r| Region::parse(r).unwrap()),
            failover_region: failover.map(|r| Region::parse(r).unwrap()),
        }
    }

    const ARN_WEST: &str = "- objectName: arn:aws:secretsmanager:us-west-2:1:secret:x\n";

    #[test]
    fn a_known_primary_region_is_checked_with_the_objects() {
        let err = spec(ARN_WEST, Some("us-east-1"), None)
            .check(&ClassRules::default())
            .unwrap_err();
        assert!(
            matches!(&err, ClassError::Objects(e) if e.has(super::super::objects::Rule::ArnRegionMismatch)),
            "{err}"
        );
        let checked = spec(ARN_WEST, Some("us-west-2"), None)
            .check(&ClassRules::default())
            .unwrap();
        assert_eq!(
            checked.regions.map(|r| r.primary.to_string()).as_deref(),
            Some("us-west-2")
        );
    }

    #[test]
    fn a_primary_learned_later_gets_the_same_rule_and_message() {
        let checked = spec(ARN_WEST, None, None)
            .check(&ClassRules::default())
            .unwrap();
        assert!(checked.regions.is_none());
        let east = Region::parse("us-east-1").unwrap();
        let later = checked.in_region(east).unwrap_err().to_string();
        let at_once = spec(ARN_WEST, Some("us-east-1"), None)
            .check(&ClassRules::default())
            .unwrap_err()
            .to_string();
        assert_eq!(later, at_once);
        assert!(checked
            .in_region(Region::parse("us-west-2").unwrap())
            .is_ok());
    }

    #[test]
    fn a_failover_region_equal_to_the_primary_is_refused_either_way() {
        let objects = "- {objectName: a, objectType: secretsmanager}\n";
        let err = spec(objects, Some("us-east-1"), Some("us-east-1"))
            .check(&ClassRules::default())
            .unwrap_err();
        assert!(matches!(err, ClassError::SameRegions(_)), "{err}");
        let checked = spec(objects, None, Some("us-east-1"))
            .check(&ClassRules::default())
            .unwrap();
        let err = checked
            .in_region(Region::parse("us-east-1").unwrap())
            .unwrap_err();
        assert!(matches!(err, ClassError::SameRegions(_)), "{err}");
    }
}
