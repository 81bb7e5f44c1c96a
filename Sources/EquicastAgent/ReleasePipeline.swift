import EquicastCore
import EquicastCrypto
import EquicastPosix

/// The daemon's release pipeline, as state: where releases are kept, the persisted update record, the image being
/// built, and the hook command in progress. The daemon's methods in Daemon+Release.swift move it on; the node's
/// `Dissemination` owns everything about fetching and spreading.
struct ReleasePipeline {
    /// A hook command in progress.
    struct Hook {
        enum Kind {
            case install, health, rollback(after: UpdateState)
        }
        let kind: Kind
        let process: ChildProcess
        let deadline: UInt64
    }

    /// Chunks, manifests and images under StateDirectory/releases (nil: none could be opened).
    let store: ReleaseStore?
    /// What the driver persists of the update (`UpdateRecord`), written before each step starts.
    var record: UpdateRecord
    var hook: Hook?
    /// Every chunk is here: verify and install at the next loop turn.
    var resumeAfterDownload = false
    /// The update admin status (EQUICAST-LITE-MIB::equicastUpdateAdminStatus): when true, a verified release
    /// stays staged instead of being installed. Kept in StateDirectory/update-admin-status.
    var installsDeferred = false
    /// Why the update last failed or rolled back (for the notification).
    var updateReason = ""
    /// When the update state last changed (or the agent started), and when the held release's last chunk was
    /// verified: the control socket's status reports how long ago, so a watcher polling now and then still
    /// learns when to the millisecond.
    var updateChangedAt: UInt64
    var chunksCompleteAt: UInt64?
    /// The held release's image while its chunks arrive (installable releases only), whether it has work for
    /// the next loop turns (chunks found already stored), and whether every chunk is here and it is being
    /// read back and verified.
    var image: ImageBuilder?
    var imageBusy = false
    var imageFinishing = false

    /// The record kept in `store`, or a fresh one saying `firmwareVersion` runs (committed when it is set).
    init(store: ReleaseStore?, firmwareVersion: UInt64, now: UInt64) {
        self.store = store
        self.updateChangedAt = now
        if let kept = store?.loadRecord() {
            record = kept
        } else {
            record = UpdateRecord()
            record.installedVersion = firmwareVersion
            record.state = firmwareVersion > 0 ? .committed : .idle
        }
    }

    /// Stops building the image; a partial one is removed.
    mutating func closeImage() {
        image = nil
        imageBusy = false
        imageFinishing = false
    }

    /// Records a new update state for `release` (persisted by the caller). A failed or rolled-back release is
    /// remembered as rejected unless `rejecting` is false.
    mutating func note(_ state: UpdateState, release: Digest256?, rejecting: Bool, now: UInt64) {
        record.state = state
        updateChangedAt = now
        record.release = release
        if rejecting, state == .failed || state == .rolledBack, let r = release, !record.rejected.contains(r) {
            if record.rejected.count >= ReleaseSettings.rejectedReleasesMax { record.rejected.removeFirst() }
            record.rejected.append(r)
        }
    }
}
