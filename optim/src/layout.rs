//! The member-major flat parameter buffer's layout: named leaves inside one member.

/// One named leaf (e.g. `layers.0.weight`) inside a member's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The leaf's name.
    pub name: String,
    /// Offset of the leaf inside one member's block.
    pub offset: usize,
    /// Number of values in the leaf.
    pub len: usize,
}

/// How `E` members' parameters sit in one buffer of `E·P` values.
///
/// Member `e` owns `buffer[e·P..(e+1)·P]`; inside it, leaves are contiguous and in order. Every
/// transformation in this crate acts on such a buffer with per-member semantics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    members: usize,
    leaves: Vec<Leaf>,
    member_size: usize,
}

impl Layout {
    /// A layout of `members` members with leaves `(name, len)` in order.
    pub fn new<S: Into<String>>(
        members: usize,
        leaves: impl IntoIterator<Item = (S, usize)>,
    ) -> Self {
        let mut offset = 0;
        let leaves = leaves
            .into_iter()
            .map(|(name, len)| {
                let leaf = Leaf {
                    name: name.into(),
                    offset,
                    len,
                };
                offset += len;
                leaf
            })
            .collect();
        Layout {
            members,
            leaves,
            member_size: offset,
        }
    }

    /// A layout with a single leaf named `"params"` of `member_size` values.
    pub fn flat(members: usize, member_size: usize) -> Self {
        Layout::new(members, [("params", member_size)])
    }

    /// Number of members `E`.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Values per member `P`.
    pub fn member_size(&self) -> usize {
        self.member_size
    }

    /// Total values `E·P`.
    pub fn len(&self) -> usize {
        self.members * self.member_size
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaves, in order.
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The same leaves for a different number of members.
    pub fn with_members(&self, members: usize) -> Self {
        Layout {
            members,
            ..self.clone()
        }
    }
}
