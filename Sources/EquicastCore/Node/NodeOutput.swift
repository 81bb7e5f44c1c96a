import EquicastCrypto

/// What the driver must send.
public enum Transmit: Equatable, Sendable {
    /// One UDP datagram.
    case datagram(to: SocketAddress, bytes: [UInt8])
    /// Open a TCP connection to `to` (or reuse an idle one), send `bytes`, and hand the frames that come back to
    /// `handleStreamFrame(_:stream:now:)` with `.outgoing(id)` until `awaitsMoreFrames(stream:)` is false (one
    /// frame, except for a chunk's pieces); report failure with `handleStreamFailed`.
    case streamOpen(id: UInt64, to: SocketAddress, bytes: [UInt8])
    /// Send `bytes`, the reply (or its last frame) to the request read from an accepted connection.
    case streamReply(connection: UInt64, bytes: [UInt8])
    /// Send `bytes` on an accepted connection: one frame of a reply that more frames follow (a chunk's pieces).
    case streamPart(connection: UInt64, bytes: [UInt8])
}

/// Which TCP connection a stream frame came from.
public enum StreamOrigin: Equatable, Sendable {
    /// A connection this node opened with `Transmit.streamOpen`.
    case outgoing(UInt64)
    /// A connection the driver accepted; the id is the driver's.
    case accepted(UInt64)
}

/// What happened, for the driver to log, count or act on.
public enum NodeEvent: Equatable, Sendable {
    case memberJoined(NodeID, SocketAddress)
    case memberSuspect(NodeID)
    case memberFailed(NodeID)
    case memberLeft(NodeID)
    /// A suspected or failed member proved alive with a higher incarnation.
    case memberRecovered(NodeID)
    /// This node refuted a suspicion about itself.
    case refuted(incarnation: UInt64)
    case eventReceived(GossipEvent)
    /// This node verified a release's manifest and now holds and spreads it; it installs it if `installable`.
    case releaseAccepted(ReleaseAdvert, installable: Bool)
    /// A manifest or a pushed release was refused: why, and who sent it.
    case releaseRefused(ReleaseError, from: SocketAddress)
    /// Every chunk of an installable release is stored and verified: the driver assembles and installs it.
    case releaseDownloaded(Digest256)
    /// A download stopped by a storage failure (`chunkStoreFailed`) starts again.
    case releaseResumed(Digest256)
    /// A peer answered a request for `chunk` with bytes that do not match the signed manifest, in any form (it
    /// is no longer asked for this release).
    case integrityViolation(peer: NodeID, address: SocketAddress, release: Digest256, chunk: Int)
    /// A frame or message was refused (counted; the driver may log it at debug level).
    case refused(WireError, from: SocketAddress)
}

/// Operator commands.
public enum NodeCommand: Equatable, Sendable {
    /// Announce departure and stop probing; the driver exits once `leaveComplete` is true.
    case leave
    /// Broadcast an application event to the whole fleet.
    case broadcast([UInt8])
    /// Sync with these addresses now (join through seeds).
    case join([SocketAddress])
}

/// Storage work the driver does for the node; the node itself never touches a file. Each request carries what
/// the driver needs to carry it out (chunk ids and sizes), so a driver never asks the node back.
public enum StorageRequest: Equatable, Sendable {
    /// Keep this release's manifest (it is now the release this node holds), find which of its chunks are
    /// already stored (by chunk id: chunks of the running image are reused), and report with `releaseOpened`.
    case openRelease(SignedManifest)
    /// Store a verified chunk (compressed bytes) under its id. On failure (full disk), call `chunkStoreFailed`:
    /// the download stops, and resumes after `ReleaseSettings.storageRetryInterval`.
    case storeChunk(release: Digest256, index: Int, chunk: Digest256, bytes: [UInt8])
    /// Read a stored chunk (`chunk.compressedSize` bytes under `chunk.id`) and hand it to
    /// `serveChunk(connection:requester:release:index:from:bytes:now:)`, nil if unreadable.
    case readChunk(connection: UInt64, requester: NodeID, release: Digest256, index: Int, chunk: ChunkEntry, from: Int)
    /// A stored chunk read back wrong: delete it (it will be fetched again).
    case discardChunk(release: Digest256, index: Int, chunk: Digest256)
}

/// A FIFO the driver drains: appends at the back, pops from the front without shifting, and reuses its storage
/// once empty.
struct OutputQueue<Element> {
    private var items: [Element] = []
    private var head = 0

    mutating func append(_ item: Element) { items.append(item) }

    var isEmpty: Bool { head >= items.count }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head == items.count {
            // Small storage is reused; a burst's (a sync's thousand events) is given back.
            if items.capacity > 64 { items = [] } else { items.removeAll(keepingCapacity: true) }
            head = 0
        }
        return item
    }
}
