import EquicastCore

/// Member records moved by gossip and by syncs, and how many changed a view.
public struct SimRecordCounts: Equatable, Sendable {
    public var gossipReceived: UInt64 = 0
    public var gossipApplied: UInt64 = 0
    public var syncReceived: UInt64 = 0
    public var syncApplied: UInt64 = 0

    mutating func add(_ c: NodeCounters) {
        gossipReceived += c.gossipRecordsReceived
        gossipApplied += c.gossipRecordsApplied
        syncReceived += c.syncRecordsReceived
        syncApplied += c.syncRecordsApplied
    }
}

/// One sample of the fleet, taken every gossip interval.
public struct SimSample: Equatable, Sendable {
    public let milliseconds: UInt64
    /// Live nodes whose view is exactly the live set, as a fraction of the live nodes.
    public let convergedFraction: Double
    public let liveNodes: Int
    /// Datagrams and bytes (IP and UDP headers included) sent by all nodes since the previous sample.
    public let datagrams: UInt64
    public let bytes: UInt64
    /// Syncs (pulls and joins) started since the previous sample.
    public let syncs: UInt64
    /// rollout: live nodes that have verified the release, as a fraction of the live nodes.
    public let verifiedFraction: Double
}

/// What the simulator measures: how much of the fleet holds the true view, samples every gossip interval, and the
/// member records moved.
extension Simulator {
    /// Live nodes whose view is exactly the live set (their digest equals the truth).
    public var convergedCount: Int {
        var n = 0
        for s in slots where s.up && s.node!.digest == truthDigest { n += 1 }
        return n
    }

    func checkConvergence() {
        if options.scenario == .adversary {
            sampleAdversaryRun()
            return
        }
        if faultPhaseOver && convergedAt == nil && convergedCount == liveCount { convergedAt = now / 1000 }
    }

    func takeSample() {
        let converged = convergedCount
        samples.append(
            SimSample(
                milliseconds: now / 1000, convergedFraction: liveCount == 0 ? 1 : Double(converged) / Double(liveCount),
                liveNodes: liveCount, datagrams: network.sampleDatagrams, bytes: network.sampleBytes,
                syncs: sampleSyncs,
                verifiedFraction: liveCount == 0 ? 0 : Double(verifiedLive) / Double(liveCount)))
        network.sampleDatagrams = 0
        network.sampleBytes = 0
        sampleSyncs = 0
        if options.scenario == .adversary {
            sampleAdversaryRun()
            return
        }
        if faultPhaseOver && convergedAt == nil && converged == liveCount { convergedAt = now / 1000 }
    }

    /// The first sample time at or after `from` (ms) when every live node had the full view; nil if never.
    public func firstFullConvergence(after from: UInt64) -> UInt64? {
        samples.first { $0.milliseconds >= from && $0.convergedFraction == 1 }?.milliseconds
    }

    /// Member records received and applied over the run, by every node that ran.
    public var recordCounts: SimRecordCounts {
        var total = stoppedRecords
        for s in slots where s.up { total.add(s.node!.counters) }
        return total
    }
}
