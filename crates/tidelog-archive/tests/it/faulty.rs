//! A store wrapper that fails operations on a plan: puts, gets and lists that fail, and puts
//! that reach the store but report an error, for what the archiver must survive.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// What to do with the next operations whose path contains a string.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Operation: "put", "get", "list", "delete", "multipart".
    pub op: &'static str,
    /// Applies to paths containing this.
    pub path_contains: &'static str,
    /// How many matching calls it applies to (then it is spent).
    pub times: u64,
    /// Whether the call reaches the store before the error is reported.
    pub after: bool,
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
    /// Puts to paths containing this, after this many of them, wait forever.
    stall: Mutex<Option<(&'static str, u64)>>,
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
        Arc::new(FaultyStore {
            inner,
            rules: Mutex::new(Vec::new()),
            puts: Mutex::new(Vec::new()),
            failed: AtomicU64::new(0),
            gate: (Mutex::new(true), Condvar::new()),
            stall: Mutex::new(None),
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

    /// Makes puts to paths containing `part` wait forever once `after` of them went through
    /// (printing `stalled` on stdout when one starts waiting).
    pub(crate) fn stall_after(&self, part: &'static str, after: u64) {
        *self.stall.lock().expect("stall") = Some((part, after));
    }

    fn check_stall(&self, path: &str) {
        let mut stall = self.stall.lock().expect("stall");
        if let Some((part, left)) = stall.as_mut()
            && path.contains(*part)
        {
            if *left == 0 {
                drop(stall);
                println!("stalled");
                loop {
                    std::thread::park();
                }
            }
            *left -= 1;
        }
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
        self.check_stall(location.as_ref());
        match self.hit("put", location.as_ref()) {
            Some(false) => Err(injected(location.as_ref())),
            Some(true) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected(location.as_ref()))
            }
            None => self.inner.put_opts(location, payload, opts).await,
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
        if self.hit("multipart", location.as_ref()).is_some() {
            return Err(injected(location.as_ref()));
        }
        self.inner.put_multipart_opts(location, opts).await
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
