//! The final rows of the task table: how each final task that the client
//! still holds a result for ended, kept for the tasks that may still
//! depend on it, in pages of consecutive task ids.
//!
//! A program may hold a million finished results (bench `w13`), and each
//! keeps its row here until its handle goes. A hash map of 16-byte
//! entries costs 17 to 35 bytes a row with its growth room; task ids come
//! from one counter, so rows held together sit on the same pages, and a
//! page of [`PAGE`] rows costs about 10 bytes a row when full. A page
//! goes when its last row does; a lone row on a page costs a page.

use super::ids::{TaskId, TaskMap};
use super::room::shrink;
use super::task::Final;

/// Rows per page.
const PAGE: usize = 16;

#[derive(Debug)]
struct Page {
    rows: [Option<Final>; PAGE],
    /// Rows that are `Some`.
    used: u32,
}

/// Final rows by task id.
#[derive(Debug, Default)]
pub(super) struct Finals {
    /// Pages by `id / PAGE`.
    pages: TaskMap<Box<Page>>,
    len: usize,
}

/// The page of `id` and its row on it.
fn place(id: TaskId) -> (TaskId, usize) {
    (id / PAGE as TaskId, (id % PAGE as TaskId) as usize)
}

impl Finals {
    pub(super) fn get(&self, id: TaskId) -> Option<Final> {
        let (page, row) = place(id);
        self.pages.get(&page).and_then(|p| p.rows[row])
    }

    pub(super) fn contains(&self, id: TaskId) -> bool {
        self.get(id).is_some()
    }

    /// Sets `id`'s row to `end`, unless it has one and `replace` is false.
    pub(super) fn insert(&mut self, id: TaskId, end: Final, replace: bool) {
        let (page, row) = place(id);
        let page = self.pages.entry(page).or_insert_with(|| {
            Box::new(Page {
                rows: [None; PAGE],
                used: 0,
            })
        });
        match &mut page.rows[row] {
            Some(old) if replace => *old = end,
            Some(_) => {}
            slot @ None => {
                *slot = Some(end);
                page.used += 1;
                self.len += 1;
            }
        }
    }

    /// Drops `id`'s row; whether it had one.
    pub(super) fn remove(&mut self, id: TaskId) -> bool {
        let (key, row) = place(id);
        let Some(page) = self.pages.get_mut(&key) else {
            return false;
        };
        if page.rows[row].take().is_none() {
            return false;
        }
        self.len -= 1;
        page.used -= 1;
        if page.used == 0 {
            self.pages.remove(&key);
            shrink(&mut self.pages);
        }
        true
    }

    pub(super) fn len(&self) -> usize {
        self.len
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
        assert_eq!((finals.len(), finals.pages.len()), (100, 7));
        assert!(!finals.contains(100) && finals.get(1 << 40).is_none());
        for id in 0..PAGE as TaskId {
            assert!(finals.remove(id));
        }
        assert!(!finals.remove(0));
        assert_eq!((finals.len(), finals.pages.len()), (100 - PAGE, 6));
        assert_eq!(finals.get(PAGE as TaskId), Some(Final::Succeeded(1)));
        assert!(finals.contains(99));
    }

    #[test]
    fn dense_rows_cost_about_ten_bytes_each() {
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
        assert!(per_row < 12.0, "{per_row} bytes a row");
    }
}
