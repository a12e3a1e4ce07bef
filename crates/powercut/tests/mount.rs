//! The disk mounted for real: files written, synced or not, through the kernel, then a
//! cut and a second mount. Needs root and `/dev/fuse` ([`powercut::mount_for_test`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;

use powercut::Loss;

#[test]
fn what_was_synced_survives_a_cut_and_nothing_else() {
    let Some((disk, mount, at)) = powercut::mount_for_test() else { return };
    let dir = at.path();
    // Synced file in a synced directory.
    let mut kept = File::create(dir.join("kept")).unwrap();
    kept.write_all(b"durable").unwrap();
    kept.sync_data().unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
    // Written after the sync: lost.
    kept.write_all(b" and then some").unwrap();
    drop(kept);
    // Atomic replace: written, synced, renamed over, directory synced: kept.
    fs::write(dir.join("config.new"), b"v2").unwrap();
    File::open(dir.join("config.new")).unwrap().sync_all().unwrap();
    fs::rename(dir.join("config.new"), dir.join("config")).unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
    // A new file, synced, but its directory not synced since: lost.
    let mut orphan = File::create(dir.join("orphan")).unwrap();
    orphan.write_all(b"nobody synced my name").unwrap();
    orphan.sync_all().unwrap();
    drop(orphan);
    assert_eq!(fs::read(dir.join("kept")).unwrap(), b"durable and then some");
    let stats = mount.cut(Loss::Unsynced).unwrap();
    assert_eq!(stats.cuts, 1);
    assert!(stats.pages_lost >= 1, "{stats:?}");

    let mount = disk.mount(dir).unwrap();
    assert_eq!(fs::read(dir.join("kept")).unwrap(), b"durable");
    assert!(!dir.join("orphan").exists(), "a name is durable only once its directory is synced");
    assert_eq!(fs::read(dir.join("config")).unwrap(), b"v2");
    assert!(!dir.join("config.new").exists());
    // A clean unmount keeps everything.
    let mut late = OpenOptions::new().append(true).open(dir.join("kept")).unwrap();
    late.write_all(b"!").unwrap();
    drop(late);
    mount.unmount().unwrap();
    let _mount = disk.mount(dir).unwrap();
    assert_eq!(fs::read(dir.join("kept")).unwrap(), b"durable!");
}
