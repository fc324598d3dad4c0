//! Field-level changes: the `{field: {from, to}}` pairs that update events carry.
//!
//! The audit timeline shows what a command actually changed, field by field. So update events
//! do not carry the submitted form: they carry one [`FieldChange`] per field whose value
//! differs, computed by the aggregate against its own state. A save without changes therefore
//! records nothing at all (the seed's `partner.updated` lesson: a diff of every DTO key hides
//! the one field that moved).

use serde::{Deserialize, Serialize};

/// One field's change. `None` means "not set" on that side (e.g. a billing e-mail being set
/// for the first time has `from: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange<T> {
    /// The value before the command.
    pub from: Option<T>,
    /// The value after the command.
    pub to: Option<T>,
}

impl<T: PartialEq + Clone> FieldChange<T> {
    /// The change from `from` to `to` of an optional field, or `None` when they are equal.
    pub fn between(from: &Option<T>, to: &Option<T>) -> Option<Self> {
        (from != to).then(|| Self {
            from: from.clone(),
            to: to.clone(),
        })
    }

    /// The change of a field that always has a value, or `None` when the values are equal.
    pub fn between_values(from: &T, to: &T) -> Option<Self> {
        (from != to).then(|| Self {
            from: Some(from.clone()),
            to: Some(to.clone()),
        })
    }
}

/// Applies a change to an optional field.
pub(crate) fn apply_optional<T: Clone>(field: &mut Option<T>, change: &Option<FieldChange<T>>) {
    if let Some(change) = change {
        field.clone_from(&change.to);
    }
}

/// Applies a change to a field that always has a value. A change whose `to` is `None` cannot
/// be produced by the aggregate for such a field; if one is ever read, the field keeps its
/// value rather than inventing one.
pub(crate) fn apply_value<T: Clone>(field: &mut T, change: &Option<FieldChange<T>>) {
    if let Some(FieldChange { to: Some(to), .. }) = change {
        field.clone_from(to);
    }
}
