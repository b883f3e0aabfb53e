//! A store wrapper that fails operations on a plan: puts, gets and lists that fail, and puts
//! that reach the store but report an error, for what the archiver must survive; and that holds
//! operations at a point until the test releases them (or forever, in a process about to be
//! killed).
//!
//! Multipart uploads are wrapped too: each part put and the completion are operations of their
//! own, which rules and holds name as `"{key}#part{n}#"` (the `n`th part asked for in one
//! upload, from 1) and `"{key}#complete"`, so a plan can say "the 2nd part of every upload of a
//! sealed segment" (`".seg#part2#"`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

/// What to do with the next operations whose path contains a string.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Operation: "put", "get", "list", "multipart" (starting an upload), "part" (a part put),
    /// "complete" (an upload's completion).
    pub op: &'static str,
    /// Applies to paths containing this (for "part" and "complete", the names in the module
    /// docs).
    pub path_contains: &'static str,
    /// How many matching calls it applies to (then it is spent).
    pub times: u64,
    /// Whether the call reaches the store before the error is reported.
    pub after: bool,
}

/// A point where operations wait until [`FaultyStore::release`].
#[derive(Debug, Clone)]
pub(crate) struct Hold {
    /// Operation: "put", "multipart", "part", "complete".
    pub op: &'static str,
    /// Applies to paths containing this (named as for a [`Rule`]).
    pub path_contains: &'static str,
    /// Only once a put or a multipart upload of a path containing this has landed in the store
    /// (`None`: at once).
    pub once_landed: Option<&'static str>,
}

/// An operation that reached a [`Hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    /// Its path (named as for a [`Rule`]).
    pub at: String,
    /// The path whose landing armed the hold, if it waited for one: the last such.
    pub after: Option<String>,
}

#[derive(Debug, Default)]
struct Holds {
    next_id: u64,
    active: Vec<(u64, Hold)>,
    reached: Vec<Held>,
}

#[derive(Debug)]
pub(crate) struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    rules: Mutex<Vec<Rule>>,
    /// The path of every put and multipart upload asked for, in order.
    pub puts: Mutex<Vec<String>>,
    /// Calls that failed on the plan.
    pub failed: AtomicU64,
    /// While closed, every put waits (a stalled store).
    gate: (Mutex<bool>, Condvar),
    /// The holds in place, and the operations that reached one.
    holds: Mutex<Holds>,
    /// Told when an operation reaches a hold (for the test's thread).
    held_changed: Condvar,
    /// Bumped when holds are released (for held operations, which are futures).
    released: tokio::sync::watch::Sender<u64>,
    /// The paths of puts and completed multipart uploads that landed in the store, in order.
    landed: Mutex<Vec<String>>,
    /// Multipart work that landed, in order: `part {n} {path}` and `complete {path}`; and
    /// every abort asked for: `abort {path}`.
    pub multipart: Mutex<Vec<String>>,
    /// This store, for the uploads it hands out.
    me: Weak<FaultyStore>,
    /// Whether conditional puts are refused as not implemented (a store without them).
    pub no_conditional_puts: std::sync::atomic::AtomicBool,
    /// Whether conditional puts are done as plain ones (a store that ignores the condition).
    pub ignores_conditions: std::sync::atomic::AtomicBool,
    /// The path of every get asked for, in order.
    pub gets: Mutex<Vec<String>>,
    /// While closed, every get of a path containing this waits.
    get_gate: (Mutex<Option<&'static str>>, Condvar),
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl FaultyStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Arc<FaultyStore> {
        Arc::new_cyclic(|me| FaultyStore {
            inner,
            rules: Mutex::new(Vec::new()),
            puts: Mutex::new(Vec::new()),
            failed: AtomicU64::new(0),
            gate: (Mutex::new(true), Condvar::new()),
            holds: Mutex::new(Holds::default()),
            held_changed: Condvar::new(),
            released: tokio::sync::watch::channel(0).0,
            landed: Mutex::new(Vec::new()),
            multipart: Mutex::new(Vec::new()),
            me: me.clone(),
            no_conditional_puts: std::sync::atomic::AtomicBool::new(false),
            ignores_conditions: std::sync::atomic::AtomicBool::new(false),
            gets: Mutex::new(Vec::new()),
            get_gate: (Mutex::new(None), Condvar::new()),
        })
    }

    pub(crate) fn fail(&self, rule: Rule) {
        self.rules.lock().expect("rules").push(rule);
    }

    /// How many puts (and multipart uploads) were asked for paths containing `part`.
    pub(crate) fn puts_of(&self, part: &str) -> usize {
        self.puts
            .lock()
            .expect("puts")
            .iter()
            .filter(|p| p.contains(part))
            .count()
    }

    /// Makes every put wait (`false`) until the gate is opened again (`true`).
    pub(crate) fn set_gate(&self, open: bool) {
        *self.gate.0.lock().expect("gate") = open;
        self.gate.1.notify_all();
    }

    /// Makes every get of a path containing `part` wait (`Some`) until the gate is opened
    /// again (`None`).
    pub(crate) fn set_get_gate(&self, part: Option<&'static str>) {
        *self.get_gate.0.lock().expect("gate") = part;
        self.get_gate.1.notify_all();
    }

    /// How many gets were asked for paths containing `part`.
    pub(crate) fn gets_of(&self, part: &str) -> usize {
        self.gets
            .lock()
            .expect("gets")
            .iter()
            .filter(|p| p.contains(part))
            .count()
    }

    /// Makes the operations `hold` names wait, from now on, until [`FaultyStore::release`] of
    /// the id returned. A part held first waits for the parts before it in its upload to land,
    /// so a hold at part `n` is a moment between part `n - 1` and part `n`.
    pub(crate) fn hold(&self, hold: Hold) -> u64 {
        let mut holds = self.holds.lock().expect("holds");
        let id = holds.next_id;
        holds.next_id += 1;
        holds.active.push((id, hold));
        id
    }

    /// Lets the operations held by the hold `id` go on, and removes it.
    pub(crate) fn release(&self, id: u64) {
        self.holds
            .lock()
            .expect("holds")
            .active
            .retain(|(i, _)| *i != id);
        self.released.send_modify(|n| *n += 1);
    }

    /// Waits until an operation reaches a hold, at most `timeout`; returns the first that did
    /// and was not returned yet.
    pub(crate) fn wait_held(&self, timeout: Duration) -> Option<Held> {
        let deadline = Instant::now() + timeout;
        let mut holds = self.holds.lock().expect("holds");
        loop {
            if !holds.reached.is_empty() {
                return Some(holds.reached.remove(0));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            holds = self
                .held_changed
                .wait_timeout(holds, left)
                .expect("holds")
                .0;
        }
    }

    /// Multipart parts that landed for paths containing `part`.
    pub(crate) fn parts_landed(&self, part: &str) -> usize {
        self.multipart_count("part ", part)
    }

    /// Multipart uploads of paths containing `part` that were completed.
    pub(crate) fn completed(&self, part: &str) -> usize {
        self.multipart_count("complete ", part)
    }

    /// Aborts asked for of multipart uploads of paths containing `part`.
    pub(crate) fn aborted(&self, part: &str) -> usize {
        self.multipart_count("abort ", part)
    }

    fn multipart_count(&self, what: &str, part: &str) -> usize {
        self.multipart
            .lock()
            .expect("multipart")
            .iter()
            .filter(|e| e.starts_with(what) && e.contains(part))
            .count()
    }

    /// The hold `op` on `path` would wait at now, with the landed path that armed it.
    fn hold_for(&self, op: &str, path: &str) -> Option<(u64, Option<String>)> {
        let holds = self.holds.lock().expect("holds");
        let landed = self.landed.lock().expect("landed");
        holds.active.iter().find_map(|(id, h)| {
            if h.op != op || !path.contains(h.path_contains) {
                return None;
            }
            match h.once_landed {
                None => Some((*id, None)),
                Some(trigger) => landed
                    .iter()
                    .rev()
                    .find(|l| l.contains(trigger))
                    .map(|l| (*id, Some(l.clone()))),
            }
        })
    }

    /// Waits at the hold `op` on `path` meets, if any, until it is released.
    async fn pass_hold(&self, op: &str, path: &str) {
        let mut released = self.released.subscribe();
        let Some((id, after)) = self.hold_for(op, path) else {
            return;
        };
        self.holds.lock().expect("holds").reached.push(Held {
            at: path.to_owned(),
            after,
        });
        self.held_changed.notify_all();
        loop {
            let active = self
                .holds
                .lock()
                .expect("holds")
                .active
                .iter()
                .any(|(i, _)| *i == id);
            if !active || released.changed().await.is_err() {
                return;
            }
        }
    }

    fn landed(&self, path: &str) {
        self.landed.lock().expect("landed").push(path.to_owned());
    }

    fn pass_gate(&self) {
        let mut open = self.gate.0.lock().expect("gate");
        while !*open {
            open = self.gate.1.wait(open).expect("gate");
        }
    }

    pub(crate) fn clear(&self) {
        self.rules.lock().expect("rules").clear();
    }

    /// Whether this call fails, and if so whether after reaching the store.
    fn hit(&self, op: &str, path: &str) -> Option<bool> {
        let mut rules = self.rules.lock().expect("rules");
        let rule = rules
            .iter_mut()
            .find(|r| r.op == op && path.contains(r.path_contains) && r.times > 0)?;
        rule.times -= 1;
        self.failed.fetch_add(1, Ordering::SeqCst);
        Some(rule.after)
    }
}

fn injected(path: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: format!("injected failure at {path}").into(),
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.puts.lock().expect("puts").push(location.to_string());
        if self.no_conditional_puts.load(Ordering::SeqCst)
            && !matches!(opts.mode, object_store::PutMode::Overwrite)
        {
            return Err(object_store::Error::NotImplemented {
                operation: "conditional put".to_owned(),
                implementer: "faulty".to_owned(),
            });
        }
        let opts = if self.ignores_conditions.load(Ordering::SeqCst) {
            PutOptions::from(object_store::PutMode::Overwrite)
        } else {
            opts
        };
        self.pass_gate();
        self.pass_hold("put", location.as_ref()).await;
        match self.hit("put", location.as_ref()) {
            Some(false) => Err(injected(location.as_ref())),
            Some(true) => {
                self.inner.put_opts(location, payload, opts).await?;
                self.landed(location.as_ref());
                Err(injected(location.as_ref()))
            }
            None => {
                let put = self.inner.put_opts(location, payload, opts).await?;
                self.landed(location.as_ref());
                Ok(put)
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.puts
            .lock()
            .expect("puts")
            .push(format!("multipart {location}"));
        self.pass_hold("multipart", location.as_ref()).await;
        if self.hit("multipart", location.as_ref()).is_some() {
            return Err(injected(location.as_ref()));
        }
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner,
            store: self
                .me
                .upgrade()
                .expect("the store hands out uploads while it lives"),
            location: location.to_string(),
            parts: 0,
            done: Arc::new(tokio::sync::watch::channel(Vec::new()).0),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gets.lock().expect("gets").push(location.to_string());
        {
            let mut gate = self.get_gate.0.lock().expect("gate");
            while gate.is_some_and(|part| location.as_ref().contains(part)) {
                gate = self.get_gate.1.wait(gate).expect("gate");
            }
        }
        if self.hit("get", location.as_ref()).is_some() {
            return Err(injected(location.as_ref()));
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let shown = prefix.map(|p| p.to_string()).unwrap_or_default();
        if self.hit("list", &shown).is_some() {
            let error = injected(&shown);
            return futures::stream::once(async move { Err(error) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A multipart upload whose part puts and completion follow the store's rules and holds.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    store: Arc<FaultyStore>,
    location: String,
    /// Parts asked for so far.
    parts: u64,
    /// The numbers of the parts that landed.
    done: Arc<tokio::sync::watch::Sender<Vec<u64>>>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.parts += 1;
        let n = self.parts;
        let name = format!("{}#part{n}#", self.location);
        // Decided in the order the parts are asked for, whatever order they run in.
        let fail = self.store.hit("part", &name);
        let put = self.inner.put_part(data);
        let (store, done, location) = (
            Arc::clone(&self.store),
            Arc::clone(&self.done),
            self.location.clone(),
        );
        async move {
            if store.hold_for("part", &name).is_some() {
                let mut landed = done.subscribe();
                let _ = landed.wait_for(|d| (1..n).all(|k| d.contains(&k))).await;
            }
            store.pass_hold("part", &name).await;
            if fail == Some(false) {
                return Err(injected(&name));
            }
            put.await?;
            store
                .multipart
                .lock()
                .expect("multipart")
                .push(format!("part {n} {location}"));
            done.send_modify(|d| d.push(n));
            match fail {
                Some(_) => Err(injected(&name)),
                None => Ok(()),
            }
        }
        .boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let name = format!("{}#complete", self.location);
        self.store.pass_hold("complete", &name).await;
        let fail = self.store.hit("complete", &name);
        if fail == Some(false) {
            return Err(injected(&name));
        }
        let put = self.inner.complete().await?;
        self.store
            .multipart
            .lock()
            .expect("multipart")
            .push(format!("complete {}", self.location));
        self.store.landed(&self.location);
        match fail {
            Some(_) => Err(injected(&name)),
            None => Ok(put),
        }
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.store
            .multipart
            .lock()
            .expect("multipart")
            .push(format!("abort {}", self.location));
        self.inner.abort().await
    }
}
