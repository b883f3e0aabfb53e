//! Tests of group commit, in a file of their own so the module reads as what it owns: unit
//! tests, and the loom models (built with `--cfg loom`).

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::*;
    use std::sync::Arc;

    #[test]
    fn written_advances_only_over_a_gap_free_prefix() {
        let g = GroupCommit::new(Lsn::ZERO);
        g.complete(Lsn::new(4), Lsn::new(6)).unwrap();
        assert_eq!(g.written(), Lsn::ZERO);
        g.complete(Lsn::new(1), Lsn::new(2)).unwrap();
        assert_eq!(g.written(), Lsn::new(2));
        g.complete(Lsn::new(3), Lsn::new(3)).unwrap();
        assert_eq!(g.written(), Lsn::new(6));
    }

    #[test]
    fn a_failed_lead_reaches_the_caller_and_poisons() {
        let g = GroupCommit::new(Lsn::ZERO);
        g.handed(Lsn::new(1));
        g.complete(Lsn::new(1), Lsn::new(1)).unwrap();
        let fail = || -> Result<Synced> {
            Err(Error::Io {
                op: "sync",
                path: "/x".into(),
                source: io::Error::other("disk on fire"),
            })
        };
        assert!(matches!(
            g.commit(Lsn::new(1), 0, Deadline::NEVER, &fail),
            Err(Error::Io { .. })
        ));
        assert!(matches!(
            g.commit(Lsn::new(1), 0, Deadline::NEVER, &fail),
            Err(Error::Poisoned)
        ));
        assert_eq!(g.durable(), Lsn::ZERO);
    }

    #[test]
    fn waiters_time_out_without_a_sync() {
        let g = Arc::new(GroupCommit::new(Lsn::ZERO));
        // LSN 1 is handed to a writer that never finishes: nobody can lead a useful sync.
        g.handed(Lsn::new(1));
        let never = || -> Result<Synced> { unreachable_lead() };
        let deadline = Deadline::after(std::time::Duration::from_millis(20));
        assert!(!g.commit(Lsn::new(1), 0, deadline, &never).unwrap());
    }

    /// Hands out and writes `first..=last`, as writers do.
    fn write(g: &GroupCommit, first: u64, last: u64) {
        g.handed(Lsn::new(last));
        g.complete(Lsn::new(first), Lsn::new(last))
            .expect("unpoisoned");
    }

    #[test]
    fn a_sync_chosen_before_a_rollback_does_not_raise_durable_after_it() {
        let g = GroupCommit::new(Lsn::ZERO);
        write(&g, 1, 10);
        // The leader picks LSN 10 in generation 0; a rollback to 5 happens before it reports.
        let stale = || -> Result<Synced> {
            g.roll_back(Lsn::new(5))?;
            Ok(Synced {
                lsn: Lsn::new(10),
                generation: 0,
            })
        };
        let waited = g.commit(Lsn::new(3), 0, Deadline::NEVER, &stale);
        assert!(waited.expect("LSN 3 survives the rollback"));
        assert_eq!(g.durable(), Lsn::new(5));
    }

    #[test]
    fn a_roll_of_an_older_generation_does_not_raise_durable() {
        let g = GroupCommit::new(Lsn::ZERO);
        write(&g, 1, 10);
        g.roll_back(Lsn::new(4)).expect("unpoisoned");
        g.advance_durable(Lsn::new(10), 0).expect("unpoisoned");
        assert_eq!(g.durable(), Lsn::new(4));
        g.advance_durable(Lsn::new(4), 1).expect("unpoisoned");
        assert_eq!(g.durable(), Lsn::new(4));
    }

    #[test]
    fn a_waiter_whose_lsn_was_rolled_back_never_gets_ok_for_its_successor() {
        let g = GroupCommit::new(Lsn::ZERO);
        write(&g, 1, 10);
        g.roll_back(Lsn::new(5)).expect("unpoisoned");
        // New records 6..=10 take the same LSNs and become durable.
        write(&g, 6, 10);
        let sync = || -> Result<Synced> {
            Ok(Synced {
                lsn: g.written(),
                generation: g.generation(),
            })
        };
        assert!(
            g.commit(Lsn::new(10), 1, Deadline::NEVER, &sync)
                .expect("ok")
        );
        assert_eq!(g.durable(), Lsn::new(10));
        let old = g.commit(Lsn::new(10), 0, Deadline::NEVER, &sync);
        assert!(matches!(
            old,
            Err(Error::RolledBack { lsn, to }) if lsn == Lsn::new(10) && to == Lsn::new(5)
        ));
        // Below the rollback point the old generation's records are the same ones.
        assert!(
            g.commit(Lsn::new(5), 0, Deadline::NEVER, &sync)
                .expect("ok")
        );
    }

    #[test]
    fn the_lowest_rollback_point_is_kept_past_the_remembered_ones() {
        let g = GroupCommit::new(Lsn::ZERO);
        write(&g, 1, 100);
        g.roll_back(Lsn::new(3)).expect("unpoisoned");
        for _ in 0..ROLLBACKS_KEPT * 2 {
            write(&g, 4, 100);
            g.roll_back(Lsn::new(50)).expect("unpoisoned");
        }
        assert_eq!(g.rolled_back_since(0), Some(Lsn::new(3)));
        let recent = g.generation() - 1;
        assert_eq!(g.rolled_back_since(recent), Some(Lsn::new(50)));
        assert_eq!(g.rolled_back_since(g.generation()), None);
    }

    #[test]
    fn a_rollback_wakes_the_futures_it_concerns() {
        use std::sync::atomic::AtomicUsize;
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let g = GroupCommit::new(Lsn::ZERO);
        write(&g, 1, 10);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        assert!(g.poll_durable(Lsn::new(8), 0, &waker).is_pending());
        g.roll_back(Lsn::new(5)).expect("unpoisoned");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            g.poll_durable(Lsn::new(8), 0, &waker),
            Poll::Ready(Err(Error::RolledBack { .. }))
        ));
    }

    fn unreachable_lead() -> Result<Synced> {
        Err(Error::Closed)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A leader step that writes nothing itself and syncs whatever is written.
    fn sync_written(g: &GroupCommit) -> Result<Synced> {
        Ok(Synced {
            lsn: g.written(),
            generation: g.generation(),
        })
    }

    #[test]
    fn loom_every_waiter_returns_after_one_covering_sync() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(2));
            g.complete(Lsn::new(1), Lsn::new(2)).unwrap();
            let waiters: Vec<_> = (1..=2u64)
                .map(|t| {
                    let g = Arc::clone(&g);
                    thread::spawn(move || {
                        let lead = || sync_written(&g);
                        g.commit(Lsn::new(t), 0, Deadline::NEVER, &lead).unwrap()
                    })
                })
                .collect();
            for w in waiters {
                assert!(w.join().unwrap());
            }
            assert_eq!(g.durable(), Lsn::new(2));
        });
    }

    /// A committer whose record a sync does not cover (its region is written while the sync
    /// runs, or after) is never left parked: the leader ending its sync, or the writer
    /// completing the region, wakes it to lead the next one. A second committer covered by
    /// the first sync may return without the lock (its slot says so).
    #[test]
    fn loom_a_waiter_a_sync_did_not_cover_is_woken_to_lead() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(2));
            g.complete(Lsn::new(1), Lsn::new(1)).unwrap();
            let writer = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.complete(Lsn::new(2), Lsn::new(2)).unwrap())
            };
            let committers: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|t| {
                    let g = Arc::clone(&g);
                    thread::spawn(move || {
                        let lead = || sync_written(&g);
                        g.commit(Lsn::new(t), 0, Deadline::NEVER, &lead).unwrap()
                    })
                })
                .collect();
            writer.join().unwrap();
            for c in committers {
                assert!(c.join().unwrap());
            }
            assert_eq!(g.durable(), Lsn::new(2));
        });
    }

    #[test]
    fn loom_watermark_never_moves_backwards_with_out_of_order_writers() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(2));
            let w1 = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.complete(Lsn::new(2), Lsn::new(2)).unwrap())
            };
            let w2 = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.complete(Lsn::new(1), Lsn::new(1)).unwrap())
            };
            let committer = {
                let g = Arc::clone(&g);
                thread::spawn(move || {
                    let mut last = Lsn::ZERO;
                    let lead = || sync_written(&g);
                    assert!(g.commit(Lsn::new(2), 0, Deadline::NEVER, &lead).unwrap());
                    for _ in 0..2 {
                        let d = g.durable();
                        assert!(d >= last);
                        last = d;
                    }
                })
            };
            w1.join().unwrap();
            w2.join().unwrap();
            committer.join().unwrap();
            assert_eq!(g.written(), Lsn::new(2));
            assert_eq!(g.durable(), Lsn::new(2));
        });
    }

    #[test]
    fn loom_a_leader_waiting_for_writers_in_flight_is_woken() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(2));
            g.complete(Lsn::new(1), Lsn::new(1)).unwrap();
            // As the log's leader does: wait until the regions handed to writers are written,
            // then sync. Its own sync is running, so only the writer's completion can wake it.
            let committer = {
                let g = Arc::clone(&g);
                thread::spawn(move || {
                    let lead = || {
                        g.wait_until(Deadline::NEVER, |g| g.written() >= Lsn::new(2))?;
                        sync_written(&g)
                    };
                    assert!(g.commit(Lsn::new(2), 0, Deadline::NEVER, &lead).unwrap());
                })
            };
            let writer = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.complete(Lsn::new(2), Lsn::new(2)).unwrap())
            };
            committer.join().unwrap();
            writer.join().unwrap();
            assert_eq!(g.durable(), Lsn::new(2));
        });
    }

    #[test]
    fn loom_a_roll_never_raises_durable_over_a_concurrent_rollback() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(4));
            g.complete(Lsn::new(1), Lsn::new(4)).unwrap();
            // A roller that planned in generation 0 and synced its sealed segment up to 4.
            let roller = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.advance_durable(Lsn::new(4), 0).unwrap())
            };
            let rollback = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.roll_back(Lsn::new(2)).unwrap())
            };
            roller.join().unwrap();
            rollback.join().unwrap();
            assert_eq!(g.durable(), Lsn::new(2));
            assert_eq!(g.written(), Lsn::new(2));
        });
    }

    #[test]
    fn loom_a_failed_sync_reaches_every_covered_waiter() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(1));
            g.complete(Lsn::new(1), Lsn::new(1)).unwrap();
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let g = Arc::clone(&g);
                    thread::spawn(move || {
                        let fail = || -> Result<Synced> {
                            Err(Error::Io {
                                op: "sync",
                                path: "/log".into(),
                                source: io::Error::other("injected"),
                            })
                        };
                        g.commit(Lsn::new(1), 0, Deadline::NEVER, &fail)
                    })
                })
                .collect();
            for w in waiters {
                assert!(
                    w.join().unwrap().is_err(),
                    "no waiter gets Ok from a failed sync"
                );
            }
            assert_eq!(g.durable(), Lsn::ZERO);
        });
    }
}
