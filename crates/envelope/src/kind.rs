//! What an envelope holds, as one small enum: the `mirsal-kind` header value, and the
//! kind the router's archive and the adapter's stores record.

use crate::pb::signed_content::Body;

/// What an envelope holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    Unknown = 0,
    Letter = 1,
    Sealed = 2,
    Receipt = 3,
    Request = 4,
    Notice = 5,
}

impl Kind {
    /// The kind of an envelope whose signed content has `body` (`None`: no body).
    pub fn of(body: Option<&Body>) -> Self {
        match body {
            Some(Body::Letter(_)) => Self::Letter,
            Some(Body::Sealed(_)) => Self::Sealed,
            Some(Body::Receipt(_)) => Self::Receipt,
            Some(Body::Request(_)) => Self::Request,
            Some(Body::Notice(_)) => Self::Notice,
            None => Self::Unknown,
        }
    }

    /// The `mirsal-kind` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Letter => "letter",
            Self::Sealed => "sealed",
            Self::Receipt => "receipt",
            Self::Request => "request",
            Self::Notice => "notice",
        }
    }

    /// Letters, plain or sealed: what gets fanned out, tracked and registered.
    pub fn is_letter(self) -> bool {
        matches!(self, Self::Letter | Self::Sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn numbers_and_header_values_stay_as_stored() {
        // The numbers are in the router's and the adapters' stores; the names are in
        // the `mirsal-kind` header of every message on the bus.
        let pinned = [
            (Kind::Unknown, 0, "unknown"),
            (Kind::Letter, 1, "letter"),
            (Kind::Sealed, 2, "sealed"),
            (Kind::Receipt, 3, "receipt"),
            (Kind::Request, 4, "request"),
            (Kind::Notice, 5, "notice"),
        ];
        for (kind, number, name) in pinned {
            assert_eq!((kind as i32, kind.as_str()), (number, name));
        }
    }

    #[test]
    fn the_kind_follows_the_body() {
        assert_eq!(Kind::of(Some(&Body::Letter(pb::Letter::default()))), Kind::Letter);
        assert_eq!(Kind::of(Some(&Body::Sealed(pb::Sealed::default()))), Kind::Sealed);
        assert_eq!(Kind::of(Some(&Body::Receipt(pb::Receipt::default()))), Kind::Receipt);
        assert_eq!(Kind::of(Some(&Body::Request(pb::Request::default()))), Kind::Request);
        assert_eq!(Kind::of(Some(&Body::Notice(pb::Notice::default()))), Kind::Notice);
        assert_eq!(Kind::of(None), Kind::Unknown);
        assert!(Kind::Letter.is_letter() && Kind::Sealed.is_letter());
        assert!(!Kind::Receipt.is_letter() && !Kind::Notice.is_letter() && !Kind::Unknown.is_letter());
    }
}
