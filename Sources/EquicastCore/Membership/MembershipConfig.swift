/// The membership protocol's parameters. Times are milliseconds of the node's monotonic clock. The defaults suit a
/// LAN of up to a few thousand devices; each comment says what the value trades.
public struct MembershipConfig: Equatable, Sendable {
    /// `RingSize`: ring neighbours kept (half successors, half predecessors on the id ring), 4-8. They are always
    /// among a node's probe and gossip targets, so every node is watched by RingSize others and no node can be
    /// missed by gossip; a suspect neighbour's probe turns go to the member beyond it, which may be down too. More
    /// costs one probe slot each and speeds up failure confirmation.
    public var ringSize: Int = 4
    /// `GossipInterval`: period of gossip rounds. A round sends pending changes to the ring neighbours and
    /// `fanout` rendezvous-chosen members; a round with nothing pending sends nothing. New changes are also pushed
    /// at once, so this bounds re-transmission pace, not first-hop latency.
    public var gossipInterval: UInt64 = 200
    /// `ProbeInterval`: SWIM protocol period; one direct probe per period. Together with the probe timeout it
    /// bounds how soon a failure is first noticed; each probe costs one ping and one ack.
    public var probeInterval: UInt64 = 1000
    /// `ProbeTimeout`: wait for an ack before asking `indirectChecks` members to probe, and again before
    /// suspecting. Must exceed the network's round-trip time with margin (loss and slow CPUs).
    public var probeTimeout: UInt64 = 400
    /// `HeartbeatTimeout`: the failure bound. A member that stops answering is declared failed at most this long
    /// after its first unanswered probe when nobody confirms the suspicion (the longest suspicion lasts
    /// HeartbeatTimeout - 2 * ProbeTimeout); confirmations from its ring neighbours shorten it towards
    /// 1/SuspicionMultiplier of that. Longer tolerates longer stalls (a busy CPU, a congested link) without
    /// false failures.
    public var heartbeatTimeout: UInt64 = 5000
    /// `Fanout`: rendezvous-chosen gossip targets per round, besides the ring neighbours. Dissemination takes
    /// about log(N)/log(Fanout + RingSize) rounds.
    public var fanout: Int = 3
    /// `IndirectChecks`: members asked to probe a target that did not answer directly. Guards against a
    /// failure of the path between prober and target being taken for a failure of the target.
    public var indirectChecks: Int = 3
    /// `SuspicionMultiplier`: the shortest suspicion is the longest divided by this (Lifeguard's
    /// SuspicionMaxTimeoutMult). Higher reacts faster once confirmed.
    public var suspicionMultiplier: Int = 4
    /// Lambda in lambda * ceil(log10(N + 1)): how many times each change is retransmitted. 4 reaches every node
    /// with high probability in simulations and in memberlist's experience.
    public var retransmitMultiplier: Int = 4
    /// Most members tracked (rows in the table, windows in the replay table, entries in a sync).
    public var membersMax: Int = 16384
    /// `SyncInterval`: the longest wait between two syncs started because of a digest mismatch (the wait starts
    /// at GossipInterval and doubles while mismatches continue); a joining node retries its seeds at this pace.
    public var syncInterval: UInt64 = 2000
    /// `ReconnectInterval`: every this many ms a node syncs with one random failed member, so the two sides of a
    /// healed partition find each other again. Each attempt at a node that is really gone costs one TCP
    /// connection attempt.
    public var reconnectInterval: UInt64 = 5000
    /// How long failed and left members stay in the table (for operators and SNMP) before they are forgotten.
    public var reclaimAfter: UInt64 = 600_000
    /// Bytes of member records in one sync reply (about 140 each, with the member's key and signature): 224 KiB
    /// repairs any view of up to ~1,600 members in one pull and bounds what one pull costs the responder in a
    /// larger fleet.
    public var syncReplyByteBudget: Int = 224 << 10
    /// Most changes waiting in the gossip queue: about ten packets of news. Beyond that (a mass join, a
    /// healed partition) the most-sent changes are dropped and digest-driven pulls, which move a view in bulk,
    /// carry the rest.
    public var gossipQueueCapacity: Int = 256

    public init() {}

    /// The longest interval or timeout a setting may have: one hour. Every deadline is `now` plus a setting or a
    /// small multiple of one, so no sum a node computes from its settings can overflow.
    public static let intervalMax: UInt64 = 3_600_000  // the messages below spell it out
    /// The most members a node may be told to track.
    public static let membersMaxLimit = 1_048_576

    /// Checks ranges (upper bounds first, so that no check computes with an unchecked value); returns the name
    /// and reason of the first bad field.
    public func validate() -> (field: String, reason: String)? {
        let hour = MembershipConfig.intervalMax
        if ringSize < 2 || ringSize > 16 { return ("RingSize", "must be 2...16") }
        if gossipInterval < 10 || gossipInterval > 60_000 { return ("GossipInterval", "must be 10...60000 ms") }
        if probeInterval < 50 || probeInterval > 60_000 { return ("ProbeInterval", "must be 50...60000 ms") }
        if probeTimeout < 10 || probeTimeout >= probeInterval * 2 {
            return ("ProbeTimeout", "must be at least 10 ms and below twice ProbeInterval")
        }
        if heartbeatTimeout > hour || heartbeatTimeout <= probeTimeout * 2 {
            return ("HeartbeatTimeout", "must exceed 2 * ProbeTimeout and be at most 3600000 ms")
        }
        if fanout < 1 || fanout > 16 { return ("Fanout", "must be 1...16") }
        if indirectChecks < 0 || indirectChecks > 8 { return ("IndirectChecks", "must be 0...8") }
        if suspicionMultiplier < 1 || suspicionMultiplier > 16 { return ("SuspicionMultiplier", "must be 1...16") }
        if retransmitMultiplier < 1 || retransmitMultiplier > 16 { return ("RetransmitMultiplier", "must be 1...16") }
        if membersMax < 2 || membersMax > MembershipConfig.membersMaxLimit {
            return ("MembersMax", "must be 2...1048576")
        }
        if syncInterval < 10 || syncInterval > hour { return ("SyncInterval", "must be 10...3600000 ms") }
        if reconnectInterval < 100 || reconnectInterval > hour {
            return ("ReconnectInterval", "must be 100...3600000 ms")
        }
        return nil
    }

    /// Longest suspicion: the failure bound less the two probe timeouts that precede it.
    var suspicionTimeoutMax: UInt64 { heartbeatTimeout - 2 * probeTimeout }
    var suspicionTimeoutMin: UInt64 { max(1, suspicionTimeoutMax / UInt64(suspicionMultiplier)) }

    /// lambda * ceil(log10(n + 1)).
    func retransmitLimit(memberCount n: Int) -> Int {
        var digits = 1
        var v = n + 1
        while v >= 10 {
            v /= 10
            digits += 1
        }
        return retransmitMultiplier * digits
    }
}

/// What a node counts; exported by the control socket and the MIB.
public struct NodeCounters: Equatable, Sendable {
    public var packetsIn: UInt64 = 0
    public var packetsOut: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    /// Frames or messages that did not decode (garbage, truncation, unknown versions).
    public var decodeErrors: UInt64 = 0
    /// Frames with an unknown key id or a bad tag: another fleet, or forgery.
    public var authenticationFailures: UInt64 = 0
    public var replaysRejected: UInt64 = 0
    /// Membership claims refused as impossible from an honest peer (about this node at an incarnation it never
    /// had).
    public var claimsRefused: UInt64 = 0
    /// Members not yet known that gossip or a pull request tried to add beyond what one peer may introduce
    /// (`Membership.mayIntroduce`; a pull request may carry only its sender's record).
    public var introductionsRefused: UInt64 = 0
    /// Members' signatures checked (records that were news), and records or statuses refused because their
    /// signature was missing, invalid or by a key that does not stand for the node they name.
    public var signaturesChecked: UInt64 = 0
    public var signaturesRefused: UInt64 = 0
    public var probesSent: UInt64 = 0
    public var indirectProbesSent: UInt64 = 0
    public var suspicionsRaised: UInt64 = 0
    public var refutations: UInt64 = 0
    public var syncsStarted: UInt64 = 0
    public var syncsCompleted: UInt64 = 0
    public var syncsFailed: UInt64 = 0
    public var syncsServed: UInt64 = 0
    public var eventsDelivered: UInt64 = 0
    /// Member records received in gossip and in syncs, and how many of each changed this node's view: the rest
    /// is the redundancy of epidemic spread and of whole-bucket pulls.
    public var gossipRecordsReceived: UInt64 = 0
    public var gossipRecordsApplied: UInt64 = 0
    public var syncRecordsReceived: UInt64 = 0
    public var syncRecordsApplied: UInt64 = 0
    /// Releases: manifests fetched and accepted, manifests refused (bad or unknown signature, malformed),
    /// chunks verified (fetched or pushed), chunks that did not match their id, bytes of chunks fetched and
    /// served, chunk requests that failed or timed out.
    public var manifestsAccepted: UInt64 = 0
    public var manifestsRefused: UInt64 = 0
    public var chunksVerified: UInt64 = 0
    public var badChunks: UInt64 = 0
    public var bytesDownloaded: UInt64 = 0
    public var bytesServed: UInt64 = 0
    public var chunkRequestsFailed: UInt64 = 0
    /// Release advertisements sent (Trickle, and answers to nodes found behind).
    public var advertisementsSent: UInt64 = 0

    public init() {}
}
