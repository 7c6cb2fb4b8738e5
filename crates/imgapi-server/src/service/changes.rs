//! The change feed (docs/events.md): `GET /changes` reads the change log
//! (`imgapi_meta::ChangeStore`) with each event filtered as GetImage
//! filters its image for the caller.

use imgapi_meta::StoredChange;
use imgapi_types::ChangeEvent;

use super::uploads::iso_of_ms;

/// An event as clients see it.
pub fn to_wire(change: &StoredChange) -> ChangeEvent {
    ChangeEvent {
        seq: change.seq,
        time: iso_of_ms(change.time_ms),
        kind: change.kind,
        uuid: change.uuid.to_string(),
        owner: change.image.owner.to_string(),
        name: change.image.name.clone(),
        version: change.image.version.clone(),
        fields: change.fields.clone(),
    }
}
