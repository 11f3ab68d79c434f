//! `select`: objects chosen by Parameter Store path, or by Secrets Manager name prefix
//! and tags, instead of listed by name. Each match becomes a file named after it by the
//! class's path translation, under the same rules as a listed object's name.

use std::fmt;

use super::acm::NO_CERTIFICATE_SELECTION;
use super::raw::{RawObject, RawSelect};
use super::rules::ObjectChecker;
use super::{ObjectKind, Rule};
use crate::domain::attributes::parse_go_bool;
use crate::domain::encoding::Encoding;
use crate::domain::mode::FileMode;
use crate::domain::text::bounded;

/// What one store is asked to choose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selection {
    /// Every parameter under `path` (its direct children, or all below with `recursive`).
    ParameterPath { path: String, recursive: bool },
    /// Every secret matching all the filters given (at least one is): name prefix, a
    /// tag key, a tag value.
    Secrets {
        name_prefix: Option<String>,
        tag_key: Option<String>,
        tag_value: Option<String>,
    },
}

impl Selection {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Selection::ParameterPath { .. } => ObjectKind::SsmParameter,
            Selection::Secrets { .. } => ObjectKind::SecretsManager,
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::ParameterPath { path, recursive } => {
                write!(f, "path `{}`", bounded(path))?;
                if *recursive {
                    f.write_str(" (recursive)")?;
                }
                Ok(())
            }
            Selection::Secrets {
                name_prefix,
                tag_key,
                tag_value,
            } => {
                let parts: Vec<String> = [
                    name_prefix
                        .as_ref()
                        .map(|p| format!("name prefix `{}`", bounded(p))),
                    tag_key
                        .as_ref()
                        .map(|k| format!("tag key `{}`", bounded(k))),
                    tag_value
                        .as_ref()
                        .map(|v| format!("tag value `{}`", bounded(v))),
                ]
                .into_iter()
                .flatten()
                .collect();
                f.write_str(&parts.join(", "))
            }
        }
    }
}

/// A validated `select` entry of the class.
#[derive(Debug, Clone)]
pub struct SelectionSpec {
    /// 1-based position in the list, for messages.
    pub position: usize,
    pub selection: Selection,
    pub mode: FileMode,
    pub encoding: Encoding,
}

impl SelectionSpec {
    /// How messages name this entry.
    pub fn describe(&self) -> String {
        format!("select {} (#{})", self.selection, self.position)
    }

    /// How many copies of each match's value a mount may hold at once.
    pub fn copies(&self) -> usize {
        super::value_copies(self.encoding, 0, false, false)
    }
}

/// Longest path or filter value AWS accepts (Parameter Store paths: 2048 characters;
/// Secrets Manager filter values: 512).
const MAX_PATH_CHARS: usize = 2048;
const MAX_FILTER_CHARS: usize = 512;

impl ObjectChecker<'_, '_> {
    /// A `select` entry: the store and what to choose, and only the fields that apply to
    /// every match (filePermission, objectEncoding).
    pub(super) fn selection(&mut self, raw: RawObject, select: RawSelect) -> Option<SelectionSpec> {
        let before = self.errors.len();
        let name = "";
        self.keys(name, None, &raw.keys);
        self.keys(name, Some("select".to_string()), &select.keys);
        let refused = [
            ("objectName", raw.object_name.is_some()),
            ("objectAlias", raw.object_alias.is_some()),
            ("objectVersion", raw.object_version.is_some()),
            ("objectVersionLabel", raw.object_version_label.is_some()),
            ("jmesPath", raw.jmes_path.is_some()),
            ("failoverObject", raw.failover_object.is_some()),
            ("expandJson", raw.expand_json.is_some()),
            ("nonString", raw.non_string.is_some()),
        ];
        for (field, given) in refused {
            if given {
                self.fail(
                    name,
                    Rule::Select,
                    format!("select chooses the objects: {field} cannot be set with it"),
                );
            }
        }
        let kind = match raw.object_type.as_deref() {
            None => {
                self.fail(
                    name,
                    Rule::ObjectTypeRequired,
                    "objectType is required with select (ssmparameter or secretsmanager)",
                );
                None
            }
            declared => self.kind(name, declared),
        };
        let too_long = |text: &Option<String>, max: usize| {
            text.as_ref().is_some_and(|t| t.chars().count() > max)
        };
        let selection = match kind {
            None => None,
            Some(ObjectKind::SsmParameter) => {
                for (field, given) in [
                    ("namePrefix", select.name_prefix.is_some()),
                    ("tagKey", select.tag_key.is_some()),
                    ("tagValue", select.tag_value.is_some()),
                ] {
                    if given {
                        self.fail(name, Rule::Select, format!("select.{field} is for secretsmanager; Parameter Store selects by path"));
                    }
                }
                let recursive = match select.recursive.as_deref() {
                    None => Some(false),
                    Some(text) => parse_go_bool(text).or_else(|| {
                        self.fail(
                            name,
                            Rule::Select,
                            format!(
                                "select.recursive `{}` is not a boolean (true/false)",
                                bounded(text)
                            ),
                        );
                        None
                    }),
                };
                match select.path {
                    Some(path)
                        if path.starts_with('/')
                            && !too_long(&Some(path.clone()), MAX_PATH_CHARS) =>
                    {
                        recursive.map(|recursive| Selection::ParameterPath { path, recursive })
                    }
                    Some(path) => {
                        self.fail(name, Rule::Select, format!("select.path `{}` must start with / and be at most {MAX_PATH_CHARS} characters", bounded(&path)));
                        None
                    }
                    None => {
                        self.fail(
                            name,
                            Rule::Select,
                            "select.path is required for ssmparameter",
                        );
                        None
                    }
                }
            }
            Some(ObjectKind::SecretsManager) => {
                for (field, given) in [
                    ("path", select.path.is_some()),
                    ("recursive", select.recursive.is_some()),
                ] {
                    if given {
                        self.fail(name, Rule::Select, format!("select.{field} is for ssmparameter; Secrets Manager selects by namePrefix, tagKey and tagValue"));
                    }
                }
                let filters = [&select.name_prefix, &select.tag_key, &select.tag_value];
                if filters.iter().all(|f| f.is_none()) {
                    self.fail(
                        name,
                        Rule::Select,
                        "select for secretsmanager needs namePrefix, tagKey or tagValue",
                    );
                    None
                } else if filters.iter().any(|f| too_long(f, MAX_FILTER_CHARS)) {
                    self.fail(
                        name,
                        Rule::Select,
                        format!("select filters are at most {MAX_FILTER_CHARS} characters each"),
                    );
                    None
                } else {
                    Some(Selection::Secrets {
                        name_prefix: select.name_prefix,
                        tag_key: select.tag_key,
                        tag_value: select.tag_value,
                    })
                }
            }
            Some(ObjectKind::Acm) => {
                self.fail(name, Rule::Select, NO_CERTIFICATE_SELECTION);
                None
            }
        };
        let mode = match raw.file_permission.as_deref() {
            None => self.ctx.default_mode,
            Some(text) => FileMode::parse_octal(text).unwrap_or_else(|e| {
                self.fail(name, Rule::FilePermission, e.to_string());
                self.ctx.default_mode
            }),
        };
        let encoding = self.encoding(name, None, raw.object_encoding.as_deref());
        if self.errors.len() > before {
            return None;
        }
        Some(SelectionSpec {
            position: self.position,
            selection: selection?,
            mode,
            encoding,
        })
    }
}
