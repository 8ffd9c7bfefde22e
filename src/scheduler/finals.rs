//! The final rows of the task table: how each final task that the client
//! still holds a result for ended, kept for the tasks that may still
//! depend on it, in pages of consecutive task ids.
//!
//! A program may hold a million finished results (bench `w13`), and each
//! keeps its row here until its handle goes. A hash map of 16-byte
//! entries costs 17 to 35 bytes a row with its growth room; task ids come
//! from one counter, so rows held together sit on the same pages, and a
//! page of [`PAGE`] rows costs 10 to 14 bytes a row when full. The pages
//! are kept together in one vector, not each in an allocation of its own:
//! made while a burst of tasks is pending, boxed pages would lie scattered
//! among the pending tasks' memory, and once that is freed each would keep
//! a mostly empty memory page resident. A page goes when its last row
//! does (its slot is reused; the vector is compacted once mostly empty);
//! a lone row on a page costs a page.

use super::ids::{TaskId, TaskMap};
use super::room::shrink;
use super::task::Final;

/// Rows per page.
const PAGE: usize = 16;

#[derive(Debug)]
struct Page {
    /// `id / PAGE` of its rows.
    key: TaskId,
    rows: [Option<Final>; PAGE],
    /// Rows that are `Some`; 0 for a vacant slot.
    used: u32,
}

/// Final rows by task id.
#[derive(Debug, Default)]
pub(super) struct Finals {
    /// Each page's slot in `pages`, by `id / PAGE`.
    index: TaskMap<u32>,
    pages: Vec<Page>,
    /// Vacant slots in `pages`.
    vacant: Vec<u32>,
    len: usize,
}

/// The page of `id` and its row on it.
fn place(id: TaskId) -> (TaskId, usize) {
    (id / PAGE as TaskId, (id % PAGE as TaskId) as usize)
}

impl Finals {
    pub(super) fn get(&self, id: TaskId) -> Option<Final> {
        let (key, row) = place(id);
        let slot = *self.index.get(&key)?;
        self.pages.get(slot as usize).and_then(|p| p.rows[row])
    }

    pub(super) fn contains(&self, id: TaskId) -> bool {
        self.get(id).is_some()
    }

    /// Sets `id`'s row to `end`, unless it has one and `replace` is false.
    pub(super) fn insert(&mut self, id: TaskId, end: Final, replace: bool) {
        let (key, row) = place(id);
        let slot = match self.index.get(&key) {
            Some(&slot) => slot as usize,
            None => {
                let page = Page {
                    key,
                    rows: [None; PAGE],
                    used: 0,
                };
                let slot = match self.vacant.pop() {
                    Some(slot) => {
                        self.pages[slot as usize] = page;
                        slot as usize
                    }
                    None => {
                        self.pages.push(page);
                        self.pages.len() - 1
                    }
                };
                // Slots past `u32` would need 2^32 pages (64 GiB): none.
                self.index.insert(key, slot as u32);
                slot
            }
        };
        let Some(page) = self.pages.get_mut(slot) else {
            return;
        };
        match &mut page.rows[row] {
            Some(old) if replace => *old = end,
            Some(_) => {}
            vacant @ None => {
                *vacant = Some(end);
                page.used += 1;
                self.len += 1;
            }
        }
    }

    /// Drops `id`'s row; whether it had one.
    pub(super) fn remove(&mut self, id: TaskId) -> bool {
        let (key, row) = place(id);
        let Some(&slot) = self.index.get(&key) else {
            return false;
        };
        let Some(page) = self.pages.get_mut(slot as usize) else {
            return false;
        };
        if page.rows[row].take().is_none() {
            return false;
        }
        self.len -= 1;
        page.used -= 1;
        if page.used == 0 {
            self.index.remove(&key);
            shrink(&mut self.index);
            self.vacant.push(slot);
            self.compact();
        }
        true
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Once at most a quarter of the slots hold pages (and past 64 slots),
    /// moves the pages into a vector of their own size, so that the room of
    /// a burst goes back: O(1) per removal overall.
    fn compact(&mut self) {
        if self.pages.len() <= 64 || self.index.len() > self.pages.len() / 4 {
            return;
        }
        // A vector of its own: collecting in place would keep the room.
        let mut pages = Vec::with_capacity(self.index.len());
        pages.extend(
            std::mem::take(&mut self.pages)
                .into_iter()
                .filter(|p| p.used > 0),
        );
        self.index = pages
            .iter()
            .enumerate()
            .map(|(slot, p)| (p.key, slot as u32))
            .collect();
        self.pages = pages;
        self.vacant = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_and_go_and_empty_pages_with_them() {
        let mut finals = Finals::default();
        for id in 0..100 {
            finals.insert(id, Final::Succeeded(id as u32 % 3), false);
        }
        finals.insert(5, Final::Aborted, false);
        assert_eq!(finals.get(5), Some(Final::Succeeded(2)));
        finals.insert(5, Final::Aborted, true);
        assert_eq!(finals.get(5), Some(Final::Aborted));
        assert_eq!((finals.len(), finals.index.len()), (100, 7));
        assert!(!finals.contains(100) && finals.get(1 << 40).is_none());
        for id in 0..PAGE as TaskId {
            assert!(finals.remove(id));
        }
        assert!(!finals.remove(0));
        assert_eq!((finals.len(), finals.index.len()), (100 - PAGE, 6));
        assert_eq!(finals.get(PAGE as TaskId), Some(Final::Succeeded(1)));
        assert!(finals.contains(99));
    }

    #[test]
    fn a_drained_burst_gives_its_room_back_and_keeps_the_rest() {
        let mut finals = Finals::default();
        for id in 0..100_000 {
            finals.insert(id, Final::Succeeded(1), false);
        }
        // Keep one row in 50 pages, drop the others.
        for id in 0..100_000 {
            if id % 2_000 != 7 {
                assert!(finals.remove(id));
            }
        }
        assert_eq!(finals.len(), 50);
        assert!(
            finals.pages.capacity() <= 4 * 64,
            "{}",
            finals.pages.capacity()
        );
        for id in 0..100_000 {
            assert_eq!(finals.contains(id), id % 2_000 == 7, "row {id}");
        }
        // Vacant slots are reused.
        finals.insert(1 << 30, Final::Aborted, false);
        assert_eq!(finals.get(1 << 30), Some(Final::Aborted));
    }

    #[test]
    fn dense_rows_cost_at_most_sixteen_bytes_each() {
        const N: usize = 100_000;
        let (finals, usage) = crate::codec::allocations::measure(|| {
            let mut finals = Finals::default();
            for id in 0..N as TaskId {
                finals.insert(id, Final::NotRun, false);
            }
            finals
        });
        let per_row = usage.live as f64 / N as f64;
        assert_eq!(finals.len(), N);
        // 9 on the page, the index, and the vector's growth room.
        assert!(per_row < 16.0, "{per_row} bytes a row");
    }
}
