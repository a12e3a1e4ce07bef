//! A filesystem that loses power: an in-memory filesystem, mounted through FUSE, where only
//! what was fsynced survives a cut.
//!
//! `kill -9` cannot catch a missing or misplaced fsync: everything the process wrote is
//! still in the kernel's page cache and reaches the disk later. A power cut loses it. This
//! filesystem keeps two versions of everything:
//!
//! - a file's **contents**: what reads see, and what survives a cut — the contents as of
//!   its last `fsync` or `fdatasync` (tracked by 4 KiB page, so a sync copies only the
//!   pages written since the last one);
//! - a directory's **entries**: what lookups see (after create, rename, unlink, mkdir,
//!   rmdir), and what survives a cut — the entries as of the directory's last fsync.
//!
//! That is the strict POSIX reading: a new file, a rename or an unlink is durable only
//! once its directory is fsynced, and a file's data only once the file is. Real
//! filesystems often keep more (ext4 orders data before metadata); a program that is
//! correct here is correct on them.
//!
//! [`Disk::mount`] mounts the disk at a directory; [`Mount::cut`] is the power cut: it
//! unmounts (every process using the disk must be gone: kill it first) and throws away
//! what was not durable — all of it ([`Loss::Unsynced`]), or each unsynced page kept or
//! lost at random ([`Loss::Torn`]), which is what a disk's volatile cache may do with
//! writes it had not been told to flush. The disk can then be mounted again, as a machine
//! boots on what its disk kept.
//!
//! Not modelled: hard links, symbolic links, special files and extended attributes
//! (refused). POSIX locks are left to the kernel (the filesystem does not ask to handle
//! them), which is right while the processes sharing a file live on this machine.
//! Mounting needs root and `/dev/fuse` (the pure-Rust mount; no libfuse or fusermount).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

/// The unit of durability tracking: a sync copies the pages written since the last one.
const PAGE: usize = 4096;

/// How long the kernel may cache names and attributes. Every change passes through the
/// kernel, so its cache never goes stale while mounted; a cut remounts, which empties it.
const TTL: Duration = Duration::from_secs(1);

/// Linux's "connection aborted" errno.
const ECONNABORTED: i32 = 103;

/// The largest file: a test that writes more has a bug (and would exhaust memory).
const FILE_SIZE_MAX: u64 = 4 << 30;

/// What a cut loses.
#[derive(Clone, Copy, Debug)]
pub enum Loss {
    /// Everything not synced.
    Unsynced,
    /// Each page written but not synced survives or not by a coin toss (seeded): a
    /// volatile cache that flushed some of its writes, in no particular order. Directory
    /// changes not synced are still lost.
    Torn { seed: u64 },
}

/// Counts since the disk was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub writes: u64,
    pub bytes_written: u64,
    /// `fsync` and `fdatasync` of files.
    pub file_syncs: u64,
    /// `fsync` of directories.
    pub directory_syncs: u64,
    pub cuts: u64,
    /// Pages written but not synced when a cut came, and thrown away.
    pub pages_lost: u64,
    /// Pages written but not synced when a cut came, and kept ([`Loss::Torn`]).
    pub pages_kept: u64,
    /// Directories whose unsynced changes a cut took back.
    pub directories_reverted: u64,
}

#[derive(Debug)]
enum Body {
    File {
        contents: Vec<u8>,
        durable: Vec<u8>,
        /// Pages of `contents` that differ from `durable` (or may).
        dirty: BTreeSet<usize>,
    },
    Directory {
        entries: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
    },
}

#[derive(Debug)]
struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Node {
    fn new(body: Body, perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Self { body, perm, uid, gid, mtime: now, ctime: now }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, nlink) = match &self.body {
            Body::File { contents, .. } => (FileType::RegularFile, contents.len() as u64, 1),
            Body::Directory { entries, .. } => (FileType::Directory, 0, 2 + entries.len() as u32),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind,
            perm: self.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// Every node, by inode number. Nodes outlive their names until a cut (an unlinked file
/// may still be open, and an unsynced unlink comes back at a cut).
#[derive(Debug)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    stats: Stats,
}

impl State {
    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&self, ino: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.node(ino)?.body {
            Body::Directory { entries, .. } => Ok(entries),
            Body::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        let node = self.node_mut(ino)?;
        node.touch();
        match &mut node.body {
            Body::Directory { entries, .. } => Ok(entries),
            Body::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.entries(parent)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    /// A new node named `name` in `parent` (which must not have that name yet).
    fn add(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<FileAttr, Errno> {
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let attr = node.attr(ino);
        self.nodes.insert(ino, node);
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(attr)
    }

    fn file_mut(&mut self, ino: u64) -> Result<(&mut Vec<u8>, &mut BTreeSet<usize>), Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File { contents, dirty, .. } => Ok((contents, dirty)),
            Body::Directory { .. } => Err(Errno::EISDIR),
        }
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let end = offset.checked_add(data.len() as u64).filter(|end| *end <= FILE_SIZE_MAX);
        let end = end.ok_or(Errno::EFBIG)? as usize;
        let offset = offset as usize;
        let (contents, dirty) = self.file_mut(ino)?;
        if contents.len() < end {
            // Growing the file dirties the pages between the old end and the write too.
            dirty.extend(contents.len() / PAGE..end.div_ceil(PAGE));
            contents.resize(end, 0);
        }
        contents[offset..end].copy_from_slice(data);
        dirty.extend(offset / PAGE..end.div_ceil(PAGE));
        self.node_mut(ino)?.touch();
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        if size > FILE_SIZE_MAX {
            return Err(Errno::EFBIG);
        }
        let size = size as usize;
        let (contents, dirty) = self.file_mut(ino)?;
        let (low, high) = (size.min(contents.len()), size.max(contents.len()));
        dirty.extend(low / PAGE..high.div_ceil(PAGE));
        contents.resize(size, 0);
        self.node_mut(ino)?.touch();
        Ok(())
    }

    /// `fsync` or `fdatasync`: the file's contents become durable.
    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File { contents, durable, dirty } => {
                durable.resize(contents.len(), 0);
                for page in std::mem::take(dirty) {
                    let range = page * PAGE..((page + 1) * PAGE).min(contents.len());
                    if !range.is_empty() {
                        durable[range.clone()].copy_from_slice(&contents[range]);
                    }
                }
                self.stats.file_syncs += 1;
            }
            Body::Directory { entries, durable } => {
                durable.clone_from(entries);
                self.stats.directory_syncs += 1;
            }
        }
        Ok(())
    }

    /// The power cut: every node goes back to what was durable; nodes no durable entry
    /// reaches are gone.
    fn cut(&mut self, loss: Loss) {
        let mut rng = match loss {
            Loss::Unsynced => None,
            Loss::Torn { seed } => Some(StdRng::seed_from_u64(seed)),
        };
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        // A fixed order, so that a seed always tears the same way.
        inos.sort_unstable();
        for ino in inos {
            let node = self.nodes.get_mut(&ino).expect("listed");
            match &mut node.body {
                Body::File { contents, durable, dirty } => {
                    for page in std::mem::take(dirty) {
                        let range = page * PAGE..((page + 1) * PAGE).min(contents.len());
                        let kept = rng.as_mut().is_some_and(|rng| rng.random_bool(0.5));
                        if kept && !range.is_empty() {
                            // The size grows to cover a kept page past the durable end (a
                            // gap reads as zeros), never shrinks for a lost one.
                            if durable.len() < range.end {
                                durable.resize(range.end, 0);
                            }
                            durable[range.clone()].copy_from_slice(&contents[range]);
                            self.stats.pages_kept += 1;
                        } else {
                            self.stats.pages_lost += 1;
                        }
                    }
                    contents.clone_from(durable);
                }
                Body::Directory { entries, durable } => {
                    if entries != durable {
                        self.stats.directories_reverted += 1;
                    }
                    entries.clone_from(durable);
                }
            }
        }
        self.collect_unreachable();
        self.stats.cuts += 1;
    }

    /// Everything durable: what a clean shutdown leaves (a real system flushes its caches
    /// before it unmounts).
    fn sync_all(&mut self) {
        let inos: Vec<u64> = self.nodes.keys().copied().collect();
        for ino in inos {
            self.sync(ino).expect("listed");
        }
        self.collect_unreachable();
    }

    fn collect_unreachable(&mut self) {
        let mut reachable = BTreeSet::from([INodeNo::ROOT.0]);
        let mut todo = vec![INodeNo::ROOT.0];
        while let Some(ino) = todo.pop() {
            if let Some(Node { body: Body::Directory { entries, .. }, .. }) = self.nodes.get(&ino) {
                for child in entries.values() {
                    if reachable.insert(*child) {
                        todo.push(*child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
    }
}

/// The disk: survives its mounts. Cloning gives another handle on the same disk.
#[derive(Clone, Debug)]
pub struct Disk {
    state: Arc<Mutex<State>>,
}

impl Disk {
    /// An empty disk whose root directory belongs to `uid`:`gid`.
    pub fn new(uid: u32, gid: u32) -> Self {
        let root = Node::new(
            Body::Directory { entries: BTreeMap::new(), durable: BTreeMap::new() },
            0o755,
            uid,
            gid,
        );
        let state = State {
            nodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            next_ino: INodeNo::ROOT.0 + 1,
            stats: Stats::default(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    /// Mounts the disk at `at` (an existing, empty directory).
    pub fn mount(&self, at: &Path) -> io::Result<Mount> {
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("powercut".into()), MountOption::RW];
        let session = fuser::spawn_mount(Volume { disk: self.clone() }, at, &config)?;
        Ok(Mount { session: Some(session), disk: self.clone() })
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in this file; the state is still whole
        // (every change is made after its checks), so carry on.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A fresh disk mounted in a new temporary directory (owned by this process's user), for a
/// test. Where a FUSE filesystem cannot be mounted (not root, no `/dev/fuse`) it says so
/// on stderr and returns `None`, so that `cargo test` passes on a laptop — except under
/// `CI=true`, where it panics: CI must run the power-loss tests.
pub fn mount_for_test() -> Option<(Disk, Mount, tempfile::TempDir)> {
    use std::os::unix::fs::MetadataExt as _;
    let at = tempfile::tempdir().expect("a temporary directory");
    let owner = std::fs::metadata(at.path()).expect("its owner");
    let disk = Disk::new(owner.uid(), owner.gid());
    match disk.mount(at.path()) {
        Ok(mount) => Some((disk, mount, at)),
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and a FUSE filesystem cannot be mounted here: {error}")
        }
        Err(error) => {
            eprintln!("skipped: a FUSE filesystem cannot be mounted here ({error})");
            None
        }
    }
}

/// A mounted disk. Dropping it unmounts as [`Mount::unmount`] does.
#[derive(Debug)]
pub struct Mount {
    session: Option<BackgroundSession>,
    disk: Disk,
}

impl Mount {
    /// Pulls the plug: unmounts, then throws away what `loss` says a cut loses. Every
    /// process with a file open here must have exited (unmounting fails while one is
    /// open). Returns the disk's counts after the cut.
    pub fn cut(mut self, loss: Loss) -> io::Result<Stats> {
        self.unmount_session()?;
        let mut state = self.disk.lock();
        state.cut(loss);
        Ok(state.stats)
    }

    /// A clean shutdown: unmounts and keeps everything.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_session()?;
        self.disk.lock().sync_all();
        Ok(())
    }

    fn unmount_session(&mut self) -> io::Result<()> {
        match self.session.take().map(BackgroundSession::umount_and_join) {
            // Once unmounted, the kernel ends the session's reads with ENODEV, or with
            // ECONNABORTED when the unmount cut off a request in flight (seen under load):
            // both mean the filesystem is gone. An unmount refused (EBUSY) fails before.
            Some(Err(error)) if error.raw_os_error() == Some(ECONNABORTED) => Ok(()),
            Some(result) => result,
            None => Ok(()),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.session.is_some() {
            let _ = self.unmount_session();
            self.disk.lock().sync_all();
        }
    }
}

/// The FUSE side: each request runs under the disk's lock.
struct Volume {
    disk: Disk,
}

fn reply_attr(result: Result<FileAttr, Errno>, reply: ReplyAttr) {
    match result {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(error) => reply.error(error),
    }
}

fn reply_entry(result: Result<FileAttr, Errno>, reply: ReplyEntry) {
    match result {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(error) => reply.error(error),
    }
}

fn reply_empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(error) => reply.error(error),
    }
}

fn new_file() -> Body {
    Body::File { contents: Vec::new(), durable: Vec::new(), dirty: BTreeSet::new() }
}

fn permissions(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for Volume {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = self.disk.lock();
        reply_entry(state.lookup(parent.0, name).and_then(|ino| Ok(state.node(ino)?.attr(ino))), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = self.disk.lock();
        reply_attr(state.node(ino.0).map(|node| node.attr(ino.0)), reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.disk.lock();
        let result = (|| {
            if let Some(size) = size {
                state.truncate(ino.0, size)?;
            }
            let node = state.node_mut(ino.0)?;
            if let Some(mode) = mode {
                node.perm = (mode & 0o7777) as u16;
            }
            node.uid = uid.unwrap_or(node.uid);
            node.gid = gid.unwrap_or(node.gid);
            match mtime {
                Some(TimeOrNow::SpecificTime(time)) => node.mtime = time,
                Some(TimeOrNow::Now) => node.mtime = SystemTime::now(),
                None => {}
            }
            node.ctime = SystemTime::now();
            Ok(node.attr(ino.0))
        })();
        reply_attr(result, reply);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let directory = Body::Directory { entries: BTreeMap::new(), durable: BTreeMap::new() };
        let node = Node::new(directory, permissions(mode, umask), req.uid(), req.gid());
        reply_entry(self.disk.lock().add(parent.0, name, node), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let node = Node::new(new_file(), permissions(mode, umask), req.uid(), req.gid());
        match self.disk.lock().add(parent.0, name, node) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(error) => reply.error(error),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.disk.lock();
        let result = (|| {
            let ino = state.lookup(parent.0, name)?;
            if matches!(state.node(ino)?.body, Body::Directory { .. }) {
                return Err(Errno::EISDIR);
            }
            state.entries_mut(parent.0)?.remove(name);
            Ok(())
        })();
        reply_empty(result, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.disk.lock();
        let result = (|| {
            let ino = state.lookup(parent.0, name)?;
            if !state.entries(ino)?.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            state.entries_mut(parent.0)?.remove(name);
            Ok(())
        })();
        reply_empty(result, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.disk.lock();
        let result = (|| {
            if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
                return Err(Errno::EINVAL);
            }
            let ino = state.lookup(parent.0, name)?;
            let moving_directory = matches!(state.node(ino)?.body, Body::Directory { .. });
            if let Ok(replaced) = state.lookup(newparent.0, newname) {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                match (&state.node(replaced)?.body, moving_directory) {
                    (Body::Directory { entries, .. }, true) if !entries.is_empty() => {
                        return Err(Errno::ENOTEMPTY);
                    }
                    (Body::Directory { .. }, false) => return Err(Errno::EISDIR),
                    (Body::File { .. }, true) => return Err(Errno::ENOTDIR),
                    _ => {}
                }
            }
            // Checked before any change, so a refused rename changes nothing.
            state.entries(newparent.0)?;
            state.entries_mut(parent.0)?.remove(name);
            state.entries_mut(newparent.0)?.insert(newname.to_owned(), ino);
            Ok(())
        })();
        reply_empty(result, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.disk.lock().node(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(error) => reply.error(error),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.disk.lock();
        match state.node(ino.0).map(|node| &node.body) {
            Ok(Body::File { contents, .. }) => {
                let start = (offset as usize).min(contents.len());
                let end = start.saturating_add(size as usize).min(contents.len());
                reply.data(&contents[start..end]);
            }
            Ok(Body::Directory { .. }) => reply.error(Errno::EISDIR),
            Err(error) => reply.error(error),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.disk.lock().write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(error) => reply.error(error),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a sync: nothing becomes durable here.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply_empty(self.disk.lock().sync(ino.0), reply);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let state = self.disk.lock();
        let entries = match state.entries(ino.0) {
            Ok(entries) => entries,
            Err(error) => return reply.error(error),
        };
        let dots =
            [(ino.0, FileType::Directory, OsStr::new(".")), (ino.0, FileType::Directory, OsStr::new(".."))];
        let named = entries.iter().map(|(name, child)| {
            let kind = match state.nodes.get(child).map(|node| &node.body) {
                Some(Body::Directory { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (*child, kind, name.as_os_str())
        });
        for (index, (child, kind, name)) in dots.into_iter().chain(named).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply_empty(self.disk.lock().sync(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Room enough for any test, reported in 4 KiB blocks.
        let blocks = 1 << 24;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, PAGE as u32, 255, PAGE as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state machine alone (no mount): what survives each kind of cut.
    fn disk_with_file() -> (State, u64) {
        let disk = Disk::new(0, 0);
        let mut state = Arc::try_unwrap(disk.state).unwrap().into_inner().unwrap();
        let attr = state.add(INodeNo::ROOT.0, OsStr::new("f"), Node::new(new_file(), 0o644, 0, 0)).unwrap();
        (state, attr.ino.0)
    }

    fn contents(state: &State, ino: u64) -> Vec<u8> {
        match &state.nodes[&ino].body {
            Body::File { contents, .. } => contents.clone(),
            Body::Directory { .. } => panic!("a file"),
        }
    }

    #[test]
    fn a_new_file_needs_its_directory_synced() {
        let (mut state, ino) = disk_with_file();
        state.write(ino, 0, b"hello").unwrap();
        state.sync(ino).unwrap();
        state.cut(Loss::Unsynced);
        assert_eq!(state.lookup(INodeNo::ROOT.0, OsStr::new("f")), Err(Errno::ENOENT));
        assert!(!state.nodes.contains_key(&ino), "the unreachable file is gone");
    }

    #[test]
    fn only_synced_writes_survive() {
        let (mut state, ino) = disk_with_file();
        state.sync(INodeNo::ROOT.0).unwrap();
        state.write(ino, 0, &[1; 3 * PAGE]).unwrap();
        state.sync(ino).unwrap();
        state.write(ino, PAGE as u64, &[2; 10]).unwrap();
        state.write(ino, 5 * PAGE as u64, &[3; 10]).unwrap();
        assert_eq!(contents(&state, ino).len(), 5 * PAGE + 10);
        state.cut(Loss::Unsynced);
        assert_eq!(contents(&state, ino), vec![1; 3 * PAGE]);
        assert_eq!(state.stats.pages_lost, 4, "page 1 and pages 3 to 5");
    }

    #[test]
    fn a_truncate_is_undone_unless_synced() {
        let (mut state, ino) = disk_with_file();
        state.sync(INodeNo::ROOT.0).unwrap();
        state.write(ino, 0, &[7; 2 * PAGE]).unwrap();
        state.sync(ino).unwrap();
        state.truncate(ino, 10).unwrap();
        state.cut(Loss::Unsynced);
        assert_eq!(contents(&state, ino), vec![7; 2 * PAGE]);
        state.truncate(ino, 10).unwrap();
        state.sync(ino).unwrap();
        state.cut(Loss::Unsynced);
        assert_eq!(contents(&state, ino), vec![7; 10]);
    }

    #[test]
    fn renames_and_unlinks_are_durable_only_with_the_directory() {
        let (mut state, ino) = disk_with_file();
        let root = INodeNo::ROOT.0;
        state.write(ino, 0, b"old").unwrap();
        state.sync(ino).unwrap();
        state.sync(root).unwrap();
        let entries = state.entries_mut(root).unwrap();
        entries.remove(OsStr::new("f"));
        entries.insert("g".into(), ino);
        state.cut(Loss::Unsynced);
        assert_eq!(state.lookup(root, OsStr::new("f")), Ok(ino), "the rename was not synced");
        assert_eq!(state.lookup(root, OsStr::new("g")), Err(Errno::ENOENT));
        state.entries_mut(root).unwrap().remove(OsStr::new("f"));
        state.sync(root).unwrap();
        state.cut(Loss::Unsynced);
        assert_eq!(state.lookup(root, OsStr::new("f")), Err(Errno::ENOENT));
    }

    #[test]
    fn a_torn_cut_keeps_whole_pages_only() {
        let (mut state, ino) = disk_with_file();
        state.sync(INodeNo::ROOT.0).unwrap();
        state.write(ino, 0, &[0; 64 * PAGE]).unwrap();
        state.sync(ino).unwrap();
        for page in 0..64 {
            state.write(ino, (page * PAGE) as u64, &[page as u8 + 1; PAGE]).unwrap();
        }
        state.cut(Loss::Torn { seed: 7 });
        let after = contents(&state, ino);
        let kept = (0..64).filter(|page| after[page * PAGE] != 0).count();
        for page in 0..64 {
            let chunk = &after[page * PAGE..(page + 1) * PAGE];
            assert!(chunk.iter().all(|byte| *byte == chunk[0]), "page {page} is whole");
        }
        assert!(0 < kept && kept < 64, "some pages kept, some lost: {kept}");
        assert_eq!(state.stats.pages_kept, kept as u64);
        assert_eq!(state.stats.pages_kept + state.stats.pages_lost, 64);
    }
}
