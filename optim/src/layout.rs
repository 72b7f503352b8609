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
///
/// A layout can also describe a contiguous block of an ensemble's members
/// ([`Layout::block`]): its buffer then holds members `first_member..first_member + members`,
/// and per-member hyperparameters ([`PerMember::Each`](crate::PerMember::Each)) are looked up by
/// the ensemble's member index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    members: usize,
    first_member: usize,
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
            first_member: 0,
            leaves,
            member_size: offset,
        }
    }

    /// The same leaves for members `range` of this layout's ensemble (indices relative to this
    /// layout's first member).
    ///
    /// ```
    /// let layout = flock_optim::Layout::flat(8, 3);
    /// let block = layout.block(4..6);
    /// assert_eq!((block.members(), block.first_member(), block.len()), (2, 4, 6));
    /// assert_eq!(block.block(1..2).first_member(), 5);
    /// ```
    pub fn block(&self, range: core::ops::Range<usize>) -> Self {
        Layout {
            members: range.len(),
            first_member: self.first_member + range.start,
            ..self.clone()
        }
    }

    /// The same layout with its members numbered from `first_member` in their ensemble.
    pub fn starting_at(mut self, first_member: usize) -> Self {
        self.first_member = first_member;
        self
    }

    /// The ensemble index of this layout's first member (0 unless made by [`Layout::block`]).
    pub fn first_member(&self) -> usize {
        self.first_member
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
