//! [`StatePool`]: the fixed set of linear-attention *state slots* of a hybrid model.
//!
//! A running request of a hybrid model owns exactly one slot (its conv window and recurrent state
//! in every linear layer live there); attention-only models have a pool of 0 slots and never ask.
//!
//! Invariants:
//! - A slot is either free or owned by exactly one request; `num_free + num_in_use == num_slots`.
//! - Free slots are handed out lowest id first, so allocation order is deterministic.
//! - The pool never looks at slot contents: the runner resets or restores a slot before its
//!   owner's first step (start at position 0, or resume from a snapshot).

use std::collections::BTreeSet;

use crate::SchedError;

/// Index of a state slot; the same id addresses the same sequence in every linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateSlotId(pub u32);

impl StateSlotId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Debug)]
pub struct StatePool {
    num_slots: usize,
    free: BTreeSet<StateSlotId>,
}

impl StatePool {
    /// A pool of `num_slots` slots (0 for attention-only models).
    pub fn new(num_slots: usize) -> Result<Self, SchedError> {
        let num_slots_u32 = u32::try_from(num_slots)
            .map_err(|_| SchedError::InvalidConfig("num_state_slots must fit in u32"))?;
        Ok(Self {
            num_slots,
            free: (0..num_slots_u32).map(StateSlotId).collect(),
        })
    }

    pub fn num_slots(&self) -> usize {
        self.num_slots
    }

    pub fn num_free_slots(&self) -> usize {
        self.free.len()
    }

    pub fn num_used_slots(&self) -> usize {
        self.num_slots - self.free.len()
    }

    pub fn is_free(&self, slot: StateSlotId) -> bool {
        self.free.contains(&slot)
    }

    /// Takes the lowest free slot; `None` when every slot is owned.
    pub fn allocate(&mut self) -> Option<StateSlotId> {
        self.free.pop_first()
    }

    /// Returns `slot` to the pool.
    pub fn free(&mut self, slot: StateSlotId) -> Result<(), SchedError> {
        if slot.index() >= self.num_slots {
            return Err(SchedError::InvalidStateSlot(slot));
        }
        if !self.free.insert(slot) {
            return Err(SchedError::StateSlotNotInUse(slot));
        }
        Ok(())
    }
}
