import EquicastCrypto

/// The release inputs and commands of the shell: the driver's answers to storage requests and its reports of
/// the update, handed to `Dissemination`.
extension Node {
    /// The driver stored the manifest of the release this node now holds and found `present` chunks already
    /// stored. Pulls start now.
    public func releaseOpened(_ release: Digest256, present: ChunkBitfield, now: UInt64) {
        dissemination.releaseOpened(release, present: present, now: now, members: &membership, ctx: &context)
    }

    /// Restores the release this node held before a restart, from the manifest the driver kept. It is verified
    /// again (a tampered state directory is refused like any other bad manifest); the update state the driver
    /// persisted is kept, and the driver is asked (`openRelease`) which chunks survived.
    public func restoreRelease(_ bytes: [UInt8], now: UInt64) -> ReleaseError? {
        dissemination.restoreRelease(bytes, now: now, members: &membership, ctx: &context)
    }

    /// The driver could not store a chunk (full disk, I/O error): the node no longer claims it, stops
    /// downloading (fetching chunks it cannot keep would only load its peers) and reports the update failed,
    /// without rejecting the release; after `storageRetryInterval` it tries again (`releaseResumed`).
    public func chunkStoreFailed(release: Digest256, index: Int, now: UInt64) {
        dissemination.chunkStoreFailed(release: release, index: index, now: now, members: &membership, ctx: &context)
    }

    /// The driver moved the update on (verifying, staged, installing, health check, committed, failed, rolled
    /// back) or installed a new version. Failed and rolled-back releases are never fetched again, unless
    /// `rejecting` is false (the failure `chunkStoreFailed` reported, which is tried again).
    public func reportUpdate(
        _ state: UpdateState, installedVersion version: UInt64? = nil, rejecting: Bool = true, now: UInt64
    ) {
        dissemination.reportUpdate(
            state, installedVersion: version, rejecting: rejecting, now: now, members: &membership, ctx: &context)
    }

    /// The chunk a `readChunk` asked for, or nil when it could not be read. It is checked against its id before
    /// it is served, piece by piece from piece `from`: a chunk damaged on disk is dropped (and fetched again),
    /// never passed on.
    public func serveChunk(
        connection: UInt64, requester: NodeID, release: Digest256, index: Int, from: Int, bytes: [UInt8]?,
        now: UInt64
    ) {
        dissemination.serveChunk(
            connection: connection, requester: requester, release: release, index: index, from: from, bytes: bytes,
            ctx: &context)
    }

    /// Whether a chunk request this node opened (stream `sid`) still expects pieces.
    public func awaitsMoreFrames(stream sid: UInt64) -> Bool { dissemination.awaitsMoreFrames(stream: sid) }

    /// Whether a request on accepted connection `connection` is answered later, as the pieces arrive here.
    public func answersLater(connection: UInt64) -> Bool { dissemination.answersLater(connection: connection) }
}
