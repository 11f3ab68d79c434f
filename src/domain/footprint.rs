//! What a mount's values cost in memory: the rules the memory budget reserves and
//! resizes by. Before the fetch, the worst case the class allows; after it, what the
//! values fetched need; while planning, what the plan starts from; after it, what the
//! files keep. Listed objects and selections are counted by the same rules (their
//! copies by one rule too: `ObjectSpec::copies` and `SelectionSpec::copies`).

use super::fetched::{Fetched, Selected};
use super::objects::ParsedObjects;
use super::plan::{check_value_sizes, PlanError, FILE_OVERHEAD_BYTES};
use super::region::Regions;

/// Matches of one selection reserved before it is fetched. A selection may match up to
/// `max_matches`; reserving all of them at the store's maximum would make every Secrets
/// Manager selection run alone, so these are reserved and the rest are counted as they
/// arrive (each selection's share, then its allowance).
pub const SELECTION_RESERVED_MATCHES: usize = 32;

/// The bounds the rules read besides the class.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    /// Largest value of one object (its store's own, when smaller).
    pub max_secret_bytes: usize,
    /// Most matches of one selection (max_objects).
    pub max_matches: usize,
    /// What one jmesPath evaluation may hold.
    pub evaluation_bytes: usize,
    /// Files handed to the driver are held twice until the response has left: the
    /// message the transport builds from them and the bytes it encodes that into.
    pub driver_writes: bool,
}

/// What a mount reserves before it fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorstCase {
    /// The whole reservation.
    pub bytes: usize,
    /// Each selection's share of it, in class order: matches beyond it are counted as
    /// they arrive.
    pub selection_shares: Vec<usize>,
}

impl Footprint {
    /// Copies of the files held until they are written, or until the response left.
    fn response_copies(&self) -> usize {
        if self.driver_writes {
            2
        } else {
            1
        }
    }

    fn largest(&self, store_max: usize) -> usize {
        self.max_secret_bytes.min(store_max)
    }

    fn reserved_matches(&self) -> usize {
        self.max_matches.min(SELECTION_RESERVED_MATCHES)
    }

    /// What the files keep once planned: their bytes, once per copy held.
    pub fn kept_bytes(&self, files_bytes: usize) -> usize {
        files_bytes.saturating_mul(self.response_copies())
    }
}

impl ParsedObjects {
    /// Before the fetch: every object at its size limit, once per copy, from both
    /// regions while failover decides; each selection's reserved matches likewise; each
    /// known file's overhead; the response's copies; planning's base (each value as
    /// fetched); and one evaluation's allowance.
    pub fn worst_case_bytes(&self, limits: &Footprint, regions: &Regions) -> WorstCase {
        let regions_asked = regions.iter().count();
        let objects = self
            .objects
            .iter()
            .map(|o| {
                limits
                    .largest(o.primary.kind.max_value_bytes())
                    .saturating_mul(o.copies())
                    .saturating_mul(regions_asked)
            })
            .fold(0, usize::saturating_add);
        let selection_shares: Vec<usize> = self
            .selections
            .iter()
            .map(|s| {
                limits
                    .largest(s.selection.kind().max_value_bytes())
                    .saturating_mul(s.copies())
                    .saturating_mul(limits.reserved_matches())
            })
            .collect();
        let values = selection_shares
            .iter()
            .copied()
            .fold(objects, usize::saturating_add);
        let files = self.listed_files().saturating_add(
            self.selections
                .len()
                .saturating_mul(limits.reserved_matches()),
        );
        // Planning's base: the fetched values stay held while the files are made from
        // them (as in `needed_bytes`, which this must not fall short of).
        let base = self
            .objects
            .iter()
            .map(|o| limits.largest(o.primary.kind.max_value_bytes()))
            .chain(self.selections.iter().map(|s| {
                limits
                    .largest(s.selection.kind().max_value_bytes())
                    .saturating_mul(limits.reserved_matches())
            }))
            .fold(0, usize::saturating_add);
        let bytes = values
            .saturating_add(files.saturating_mul(FILE_OVERHEAD_BYTES))
            .saturating_mul(limits.response_copies())
            .saturating_add(base)
            .saturating_add(self.evaluation_bytes(limits));
        WorstCase {
            bytes,
            selection_shares,
        }
    }

    /// After the fetch: what planning holds at its peak: its base (the fetched values and
    /// one evaluation's allowance), every value once per copy made of it, and each file
    /// planning makes (its overhead counted). A value over
    /// `max_secret_bytes` fails here, before the budget is resized for it: the one
    /// place a mount checks that rule.
    pub fn needed_bytes(
        &self,
        limits: &Footprint,
        fetched: &[Fetched],
        selected: &[Vec<Selected>],
    ) -> Result<usize, PlanError> {
        check_value_sizes(
            &self.objects,
            fetched,
            &self.selections,
            selected,
            limits.max_secret_bytes,
        )?;
        let objects = self
            .objects
            .iter()
            .zip(fetched)
            .map(|(o, f)| f.value.len().saturating_mul(o.copies()));
        let matches = self.selections.iter().zip(selected).flat_map(|(s, found)| {
            let copies = s.copies();
            found
                .iter()
                .map(move |m| m.fetched.value.len().saturating_mul(copies))
        });
        let values = objects.chain(matches).fold(0, usize::saturating_add);
        let files = selected
            .iter()
            .map(Vec::len)
            .fold(self.listed_files(), usize::saturating_add);
        // Planning holds its base (the fetched values, one evaluation) while it makes the
        // files: counted here too, or the reservation trimmed to this would have to grow
        // during planning, when a busy budget refuses growth (50 mounts at once of 300 KB
        // each failed that way in the side-by-side memory scenario).
        Ok(values
            .saturating_add(files.saturating_mul(FILE_OVERHEAD_BYTES))
            .saturating_add(self.planning_base_bytes(limits, fetched, selected)))
    }

    /// While planning, besides the files and parsed secrets the plan asks for as it
    /// makes them: the fetched values themselves and one evaluation's allowance.
    pub fn planning_base_bytes(
        &self,
        limits: &Footprint,
        fetched: &[Fetched],
        selected: &[Vec<Selected>],
    ) -> usize {
        fetched
            .iter()
            .map(|f| f.value.len())
            .chain(selected.iter().flatten().map(|m| m.fetched.value.len()))
            .fold(0, usize::saturating_add)
            .saturating_add(self.evaluation_bytes(limits))
    }

    /// Files of the listed objects: each object's own and its jmesPath files.
    fn listed_files(&self) -> usize {
        self.objects
            .iter()
            .map(|o| 1 + o.jmes.len())
            .fold(0, usize::saturating_add)
    }

    /// One evaluation's allowance, when the class extracts anything.
    fn evaluation_bytes(&self, limits: &Footprint) -> usize {
        if self.objects.iter().any(|o| !o.jmes.is_empty()) {
            limits.evaluation_bytes
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mode::FileMode;
    use crate::domain::naming::PathTranslation;
    use crate::domain::objects::{parse_objects, ClassContext, YamlLimits};
    use crate::domain::region::Region;
    use crate::domain::secret::SecretValue;

    fn class(yaml: &str) -> ParsedObjects {
        let ctx = ClassContext {
            translation: PathTranslation::default(),
            default_mode: FileMode::DEFAULT,
            primary_region: None,
            failover_region: None,
            limits: YamlLimits::default(),
            strict: false,
            certificates: false,
        };
        parse_objects(yaml, &ctx).unwrap()
    }

    fn limits(driver_writes: bool) -> Footprint {
        Footprint {
            max_secret_bytes: 1 << 20,
            max_matches: 256,
            evaluation_bytes: 1000,
            driver_writes,
        }
    }

    fn regions(failover: bool) -> Regions {
        let east = Region::parse("us-east-1").unwrap();
        let west = Region::parse("us-west-2").unwrap();
        Regions::new(east, failover.then_some(west)).unwrap()
    }

    fn fetched(bytes: usize) -> Fetched {
        Fetched {
            value: SecretValue::new(vec![b'x'; bytes]),
            version: "v".into(),
        }
    }

    #[test]
    fn the_worst_case_counts_every_copy_region_file_and_the_response() {
        // A base64 secret (2 copies) with one jmesPath file (3), and an SSM parameter.
        let parsed = class("- {objectName: a, objectType: secretsmanager, objectEncoding: base64, jmesPath: [{path: k, objectAlias: k}]}\n- {objectName: b, objectType: ssmparameter}\n");
        let sm = 64 * 1024;
        let ssm = 8 * 1024;
        let files = 3 * FILE_OVERHEAD_BYTES;
        let one = parsed.worst_case_bytes(&limits(false), &regions(false));
        // Planning's base: each value as fetched, held while its files are made.
        let base = sm + ssm;
        assert_eq!(one.bytes, 3 * sm + ssm + files + base + 1000);
        let two = parsed.worst_case_bytes(&limits(false), &regions(true));
        assert_eq!(two.bytes, 2 * (3 * sm + ssm) + files + base + 1000);
        let driver = parsed.worst_case_bytes(&limits(true), &regions(false));
        assert_eq!(driver.bytes, 2 * (3 * sm + ssm + files) + base + 1000);
        assert!(one.selection_shares.is_empty());
    }

    #[test]
    fn a_selection_reserves_its_first_matches_by_the_objects_rule() {
        let parsed =
            class("- {objectType: ssmparameter, objectEncoding: hex, select: {path: /app}}\n");
        let worst = parsed.worst_case_bytes(&limits(false), &regions(true));
        let share = 8 * 1024 * 2 * SELECTION_RESERVED_MATCHES;
        assert_eq!(worst.selection_shares, [share]);
        // Failover asks a selection's regions one after the other: counted once.
        assert_eq!(
            worst.bytes,
            share
                + SELECTION_RESERVED_MATCHES * FILE_OVERHEAD_BYTES
                + 8 * 1024 * SELECTION_RESERVED_MATCHES
        );
        let few = Footprint {
            max_matches: 2,
            ..limits(false)
        };
        assert_eq!(
            parsed
                .worst_case_bytes(&few, &regions(false))
                .selection_shares,
            [8 * 1024 * 2 * 2]
        );
    }

    #[test]
    fn the_values_fetched_are_counted_alike_for_objects_and_matches() {
        let parsed = class("- {objectName: a, objectType: secretsmanager, objectEncoding: base64}\n- {objectType: ssmparameter, objectEncoding: base64, select: {path: /app}}\n");
        let found = vec![vec![
            Selected {
                name: "/app/x".into(),
                fetched: fetched(10),
            },
            Selected {
                name: "/app/y".into(),
                fetched: fetched(20),
            },
        ]];
        let needed = parsed
            .needed_bytes(&limits(false), &[fetched(100)], &found)
            .unwrap();
        // Every copy, each file's overhead, and planning's base (the values as fetched).
        assert_eq!(
            needed,
            2 * 100 + 2 * (10 + 20) + 3 * FILE_OVERHEAD_BYTES + (100 + 10 + 20)
        );
        assert_eq!(
            parsed.planning_base_bytes(&limits(false), &[fetched(100)], &found),
            130
        );
        assert_eq!(limits(true).kept_bytes(500), 1000);
    }

    #[test]
    fn what_a_mount_needs_after_the_fetch_never_exceeds_what_it_reserved() {
        // The reservation is trimmed to `needed_bytes` after the fetch; growing back
        // later would meet a busy budget, so the worst case must cover it, for every
        // kind of object, values at their limit, one region or two.
        let parsed = class("- {objectName: a, objectType: secretsmanager}\n- {objectName: b, objectType: secretsmanager, objectEncoding: base64, jmesPath: [{path: k, objectAlias: k}]}\n- {objectName: c, objectType: ssmparameter}\n- {objectType: ssmparameter, select: {path: /app}}\n");
        let full: Vec<Fetched> = [64 * 1024, 64 * 1024, 8 * 1024]
            .into_iter()
            .map(fetched)
            .collect();
        let matches = vec![(0..SELECTION_RESERVED_MATCHES)
            .map(|i| Selected {
                name: format!("/app/{i}"),
                fetched: fetched(8 * 1024),
            })
            .collect::<Vec<_>>()];
        for driver_writes in [false, true] {
            for failover in [false, true] {
                let footprint = limits(driver_writes);
                let worst = parsed.worst_case_bytes(&footprint, &regions(failover));
                let needed = parsed.needed_bytes(&footprint, &full, &matches).unwrap();
                assert!(
                    needed <= worst.bytes,
                    "driver writes {driver_writes}, failover {failover}: {needed} > {}",
                    worst.bytes
                );
            }
        }
    }

    #[test]
    fn a_value_over_the_limit_fails_naming_its_object_or_selection() {
        let parsed = class("- {objectName: a, objectType: secretsmanager}\n- {objectType: ssmparameter, select: {path: /app}}\n");
        let small = Footprint {
            max_secret_bytes: 50,
            ..limits(false)
        };
        let err = parsed
            .needed_bytes(&small, &[fetched(51)], &[Vec::new()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "object \"a\" (#1) is 51 bytes, more than max_secret_bytes (50)"
        );
        let big_match = vec![vec![Selected {
            name: "/app/x".into(),
            fetched: fetched(60),
        }]];
        let err = parsed
            .needed_bytes(&small, &[fetched(50)], &big_match)
            .unwrap_err();
        assert!(matches!(err, PlanError::TooLarge { size: 60, .. }), "{err}");
        assert!(err.to_string().starts_with("select path `/app`"), "{err}");
    }
}
