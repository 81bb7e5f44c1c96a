import EquicastCrypto

/// What a node needs to take part in releases, and how fast it talks about them.
public struct ReleaseSettings: Sendable {
    /// Release public keys this device trusts. Empty: the node relays nothing and installs nothing.
    public var trustedKeys: [Ed25519.PublicKey] = []
    /// This device's product (hardware compatibility) string; releases for another product are not installed.
    public var product: String = ""
    /// The firmware version running now (0: none recorded).
    public var installedVersion: UInt64 = 0
    /// The update state persisted by the driver (a restart mid-update resumes from it).
    public var updateState: UpdateState = .idle
    /// Releases that failed or were refused here; they are never fetched again (they are still served). At most
    /// `rejectedReleasesMax`, the oldest forgotten first.
    public var rejectedReleases: [Digest256] = []
    /// Trickle intervals (ms): the shortest (after a change) and the longest (a fleet where nothing changes
    /// sends about one advertisement per node per this long).
    public var trickleMinimum: UInt64 = 1_000
    public var trickleMaximum: UInt64 = 1_024_000
    /// Consistent advertisements heard in an interval that suppress our own (RFC 6206's k).
    public var trickleRedundancy = 1
    /// Chunk requests outstanding to one peer (one to a peer that holds every chunk), and in all. Twenty-four in
    /// all keep a 20 Mbit/s download busy while the peers' uplinks are shared by many requesters (bench/rollout.py,
    /// N = 16: with eight, some hosts ran at half the rate of others; with 16, the last host installed about 0.1 s
    /// later than with 24 in two batches of 5 trials, and 32 did no better).
    public var chunkRequestsPerPeer = 2
    public var chunkRequestsMax = 24
    /// A chunk or manifest request unanswered this long (ms) is abandoned and the peer counted as failing.
    public var requestTimeout: UInt64 = 30_000
    /// How often the download's progress is gossiped: at every 1/steps of the chunks (state changes always).
    public var progressSteps = 4
    /// After the driver could not store a chunk (a full disk), the download stops and the update shows failed
    /// for this long (ms); then the node tries again. The release is not rejected: space may be freed.
    public var storageRetryInterval: UInt64 = 600_000
    #if EQUICAST_FAULT_INJECTION
        /// Debug builds only (the process tests): serve every chunk with one byte flipped after it has been
        /// checked, as a compromised peer holding the fleet key would. Release and device builds lack the field.
        public var faultServeCorruptChunks = false
    #endif

    /// Releases remembered as refused or failed (`rejectedReleases`); the driver keeps the same number.
    public static let rejectedReleasesMax = 16

    public init() {}
}

/// A chunk request in flight: which stream, to whom, for which chunk, since when.
struct ChunkFetch {
    let stream: UInt64
    let peer: NodeID
    let address: SocketAddress
    var index: Int
    let startedAt: UInt64
    /// The piece expected next (at first the one asked for; a reply may name another chunk only in piece 0).
    var next: Int
}

/// An announced release whose manifest is being fetched: from whom, by which stream, since when.
struct ManifestFetch {
    let advert: ReleaseAdvert
    let stream: UInt64
    let startedAt: UInt64
    let peer: NodeID
    let address: SocketAddress
}
