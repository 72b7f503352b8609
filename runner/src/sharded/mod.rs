//! The ranks of a distributed fit ([`crate::distributed`]) and how they share it: members
//! ([`members`]: each rank trains a block, the blocks are gathered into one ensemble and one
//! training state), rows ([`rows`]: each rank evaluates a block of every batch's row chunks), or
//! both in a 2-D layout ([`RankLayout`]).

mod members;
mod rows;

use core::ops::Range;

pub(crate) use members::{GatheredStateFile, gather_result, read_shared_state, select_members};
pub(crate) use rows::RowShards;

use crate::distributed::{Communicator, Subgroup, block};
use crate::error::Error;

/// How a fit's ranks share the work: `R = G·K` ranks as `G` member groups (each a contiguous
/// block of the members) of `K` ranks sharing the group's rows (`K = 1`: members only; `G = 1`:
/// rows only). Rank `r` is in member group `r / K` at row position `r mod K`.
pub(crate) struct RankLayout<'w> {
    /// This rank's members.
    pub(crate) members: Range<usize>,
    /// The ranks at this rank's row position in every member group, when members are shared.
    pub(crate) member_peers: Option<Subgroup<'w>>,
    /// The ranks of this rank's member group, when rows are shared.
    pub(crate) row_peers: Option<Subgroup<'w>>,
}

impl<'w> RankLayout<'w> {
    /// The layout of `members` members over `world` (`None` or one rank: everything here): rows
    /// shared by `row_ranks` ranks (default every rank) when `row_chunks` is set, else members
    /// only.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `row_ranks` without row chunks or not dividing the ranks,
    /// and for fewer members than member groups.
    pub(crate) fn new(
        world: Option<&'w dyn Communicator>,
        members: usize,
        row_chunks: Option<usize>,
        row_ranks: Option<usize>,
    ) -> Result<RankLayout<'w>, Error> {
        let size = world.map_or(1, |w| w.size());
        let k = match (row_chunks, row_ranks) {
            (None, Some(k)) => {
                return Err(Error::InvalidArgument {
                    name: "row_ranks",
                    value: k.to_string(),
                    expected: "row chunks to share (row ranks only mean something with them)",
                });
            }
            (None, None) => 1,
            (Some(_), None) => size,
            (Some(_), Some(k)) if k > 0 && size.is_multiple_of(k) => k,
            (Some(_), Some(k)) => {
                return Err(Error::InvalidArgument {
                    name: "row_ranks",
                    value: k.to_string(),
                    expected: "a divisor of the number of ranks (ranks = member groups × row ranks)",
                });
            }
        };
        let groups = size / k;
        if members < groups {
            return Err(Error::InvalidArgument {
                name: "members",
                value: members.to_string(),
                expected: "at least one member per rank in a member-sharded fit (per member \
                           group with row ranks)",
            });
        }
        let Some(world) = world.filter(|_| size > 1) else {
            return Ok(RankLayout {
                members: 0..members,
                member_peers: None,
                row_peers: None,
            });
        };
        let (group, position) = (world.rank() / k, world.rank() % k);
        Ok(RankLayout {
            members: block(members, group, groups),
            member_peers: (groups > 1)
                .then(|| Subgroup::new(world, (0..groups).map(|g| g * k + position).collect()))
                .flatten(),
            row_peers: (k > 1)
                .then(|| Subgroup::new(world, (group * k..(group + 1) * k).collect()))
                .flatten(),
        })
    }
}
