import EquicastCore

/// What a run exercises.
public enum Scenario: String, CaseIterable, Sendable {
    /// Every node starts at once and joins through node 0.
    case join
    /// After the join, a fraction of the nodes (default 20%) crash at the same moment.
    case crash
    /// After the join, the fleet splits in two (symmetric or one-way), then heals.
    case partition
    /// After the join, nodes keep crashing, restarting (with or without their state) and leaving.
    case churn
    /// After the join, a signed release is handed to node 0; every node must verify it.
    case rollout
    /// After the join, a fraction of the nodes (default 5%) also send hostile messages, for the rest of the
    /// fault phase (default 60 s); meanwhile a fraction of the honest nodes (default 10%) crash.
    case adversary
}

/// The simulated network. Times are microseconds (the simulator's tick).
public struct NetworkModel: Equatable, Sendable {
    /// One-way delay: `delayMin` plus an exponential tail with mean `delayMean - delayMin`, capped at
    /// `delayMax`. Independent delays reorder packets.
    public var delayMin: UInt64 = 200
    public var delayMean: UInt64 = 1_000
    public var delayMax: UInt64 = 50_000
    /// Probability that a datagram is lost; streams (TCP) are reliable but stall behind partitions.
    public var lossProbability: Double = 0
    /// Probability that a datagram is delivered twice (with independent delays).
    public var duplicateProbability: Double = 0
    /// Per-node link rates, bits per second. Each node's uplink and downlink serialise what crosses them, so
    /// bulk transfers take realistic time; 28 bytes of IP and UDP header are counted per datagram.
    public var uploadBitsPerSecond: UInt64 = 100_000_000
    public var downloadBitsPerSecond: UInt64 = 100_000_000

    public init() {}
}

/// Everything that defines a run. Unset choices are derived from the seed (`SimOptions.derive`), and the whole
/// set is printed first, so a run can be reproduced from its seed and its flags.
public struct SimOptions: Equatable, Sendable {
    public var seed: UInt64
    public var scenario: Scenario
    public var nodeCount: Int
    /// Length of the fault phase, simulated milliseconds (from the start of the run).
    public var faultPhase: UInt64
    /// After the fault phase the network heals and crashed nodes that will restart have restarted; the fleet
    /// must then converge within this many simulated milliseconds.
    public var livenessBound: UInt64
    public var network: NetworkModel
    public var membership: MembershipConfig
    public var encryptionEnabled: Bool = true
    /// Nodes start within this window (ms), in a random order.
    public var joinSpread: UInt64
    /// crash: the fraction that crashes, and when (ms).
    public var crashFraction: Double
    public var crashAt: UInt64
    /// partition: the fraction cut off, when it starts and heals (ms), and whether only one direction is cut.
    public var partitionFraction: Double
    public var partitionAt: UInt64
    public var partitionHealAt: UInt64
    public var partitionOneWay: Bool
    /// churn: events per simulated second across the fleet (crash, restart with state, restart with state lost,
    /// graceful leave and rejoin).
    public var churnRate: Double
    /// Slow nodes: this fraction handles every input this many ms late (a busy CPU).
    public var slowFraction: Double
    public var slowDelay: UInt64
    /// Each node's clock runs fast or slow by up to this many parts per million.
    public var clockDriftPPM: Int
    /// rollout: the image's size (random bytes, so compressed chunks are as big) and when node 0 gets it (ms).
    public var releaseBytes: Int
    public var rolloutAt: UInt64
    /// adversary: the fraction of hostile nodes, the hostile messages each sends per gossip interval, and when
    /// they start (ms); they stop when the fault phase ends.
    public var adversaryFraction: Double
    public var adversaryRate: Int
    public var attackAt: UInt64
    /// adversary: the kinds of hostile message sent (indices into `Simulator.attackNames`), each as likely.
    public var attacks: [Int] = Array(0..<9)

    /// Defaults for an explicit run: a clean LAN, the agent's default membership settings.
    public init(seed: UInt64, scenario: Scenario, nodeCount: Int) {
        self.seed = seed
        self.scenario = scenario
        self.nodeCount = nodeCount
        faultPhase = 30_000
        livenessBound = 30_000
        network = NetworkModel()
        membership = MembershipConfig()
        joinSpread = 100
        crashFraction = 0.2
        crashAt = 10_000
        partitionFraction = 0.3
        partitionAt = 10_000
        partitionHealAt = 20_000
        partitionOneWay = false
        churnRate = 1
        slowFraction = 0
        slowDelay = 0
        clockDriftPPM = 0
        releaseBytes = 4 << 20
        rolloutAt = 5_000
        adversaryFraction = 0.05
        adversaryRate = 20
        attackAt = 5_000
        if scenario == .rollout { fitRollout() }
        if scenario == .adversary {
            faultPhase = 60_000
            crashFraction = 0.1
            crashAt = 20_000
        }
    }

    /// adversary: how long after a crash every survivor must have marked the crashed nodes failed. A crashed
    /// node's ring neighbours probe it within RingSize + 1 probe periods; a direct and an indirect probe time
    /// out; the longest suspicion (HeartbeatTimeout) runs out; then the verdict spreads in about ten gossip
    /// rounds.
    public var detectionBound: UInt64 {
        UInt64(membership.ringSize + 1) * membership.probeInterval + 2 * membership.probeTimeout
            + membership.heartbeatTimeout + 10 * membership.gossipInterval
    }

    /// rollout: the fault phase ends when node 0 gets the release, and every node must then verify it within
    /// 30 s plus 20 times the least time any scheme could take at these link rates.
    public mutating func fitRollout() {
        faultPhase = rolloutAt
        let least = SimRolloutResult.lowerBound(
            payloadBytes: UInt64(releaseBytes), nodes: nodeCount, upload: network.uploadBitsPerSecond,
            download: network.downloadBitsPerSecond)
        livenessBound = 30_000 + 20 * least
    }

    /// True when nothing in the run can make a live node look dead: no loss, no partition, no slow node. Only
    /// then is declaring a live node failed a safety violation.
    public var networkIsPerfect: Bool {
        network.lossProbability == 0 && slowFraction == 0
            && (scenario != .partition || partitionFraction == 0) && scenario != .churn && scenario != .adversary
    }

    /// The options line printed before a run.
    public var description: String {
        var s = "SEED=\(seed) scenario=\(scenario.rawValue) nodes=\(nodeCount)"
        s += " fault_phase_ms=\(faultPhase) liveness_bound_ms=\(livenessBound) join_spread_ms=\(joinSpread)"
        s += " delay_us=\(network.delayMin)/\(network.delayMean)/\(network.delayMax)"
        s += " loss=\(formatFraction(network.lossProbability)) dup=\(formatFraction(network.duplicateProbability))"
        s += " up_bps=\(network.uploadBitsPerSecond) down_bps=\(network.downloadBitsPerSecond)"
        switch scenario {
        case .join: break
        case .crash: s += " crash=\(formatFraction(crashFraction))@\(crashAt)ms"
        case .partition:
            s += " partition=\(formatFraction(partitionFraction))@\(partitionAt)-\(partitionHealAt)ms"
            s += partitionOneWay ? " one_way" : " symmetric"
        case .churn: s += " churn_per_s=\(formatFraction(churnRate))"
        case .rollout: s += " release_bytes=\(releaseBytes) rollout_at_ms=\(rolloutAt)"
        case .adversary:
            s += " adversaries=\(formatFraction(adversaryFraction))x\(adversaryRate)@\(attackAt)ms"
            s += " attacks=" + attacks.map { Simulator.attackNames[$0] }.joined(separator: ",")
            s += " crash=\(formatFraction(crashFraction))@\(crashAt)ms detection_bound_ms=\(detectionBound)"
        }
        s += " slow=\(formatFraction(slowFraction))x\(slowDelay)ms drift_ppm=\(clockDriftPPM)"
        s += " gossip_ms=\(membership.gossipInterval) probe_ms=\(membership.probeInterval)"
        s += " probe_timeout_ms=\(membership.probeTimeout) heartbeat_ms=\(membership.heartbeatTimeout)"
        s += " ring=\(membership.ringSize) fanout=\(membership.fanout) encryption=\(encryptionEnabled ? "on" : "off")"
        return s
    }
}

/// Choices a caller fixed; everything else `SimOptions.derive` picks from the seed.
public struct SimOverrides: Equatable, Sendable {
    public var nodeCount: Int?
    public var faultPhase: UInt64?
    public var lossProbability: Double?
    public var duplicateProbability: Double?
    public var delayMin: UInt64?
    public var delayMean: UInt64?
    public var bandwidthBitsPerSecond: UInt64?
    public var crashFraction: Double?
    public var churnRate: Double?
    public var slowFraction: Double?
    public var clockDriftPPM: Int?
    public var releaseBytes: Int?
    /// rollout: when node 0 gets the release, ms.
    public var rolloutAt: UInt64?
    /// adversary: the fraction of hostile nodes.
    public var adversaryFraction: Double?
    /// Keep the network clean (no loss, duplication, slow nodes or drift) unless set explicitly: for measuring.
    public var clean = false

    public init() {}
}

extension SimOptions {
    /// Derives a full set of options from the seed, VOPR style: the node count, the network's delays, loss and
    /// duplication, link rates, slow nodes, clock drift and the fault schedule are all drawn from one generator
    /// seeded by `seed`, except what `overrides` fixes.
    public static func derive(seed: UInt64, scenario: Scenario, overrides: SimOverrides) -> SimOptions {
        var rng = DeterministicRandom(seed: seed ^ 0x5151_0e9e_1ca5_7000)
        func uniform(_ lo: Double, _ hi: Double) -> Double {
            lo + (hi - lo) * Double(rng.next() >> 11) / Double(1 << 53)
        }
        func pick<T>(_ value: T?, _ make: () -> T) -> T {
            let drawn = make()  // drawn either way, so one override does not shift every later choice
            return value ?? drawn
        }
        let n = pick(overrides.nodeCount) { 16 + rng.below(185) }
        var o = SimOptions(seed: seed, scenario: scenario, nodeCount: n)
        let clean = overrides.clean
        o.network.delayMin = pick(overrides.delayMin) { UInt64(100 + rng.below(900)) }
        o.network.delayMean = max(
            o.network.delayMin, pick(overrides.delayMean) { o.network.delayMin * UInt64(1 + rng.below(5)) })
        o.network.delayMax = max(o.network.delayMean * 20, 20_000)
        o.network.lossProbability = pick(overrides.lossProbability) {
            clean ? 0 : [0, 0, 0.001, 0.01, 0.05][rng.below(5)]
        }
        o.network.duplicateProbability = pick(overrides.duplicateProbability) {
            clean ? 0 : [0, 0, 0.01][rng.below(3)]
        }
        let bandwidth = pick(overrides.bandwidthBitsPerSecond) {
            [10_000_000, 100_000_000, 1_000_000_000][rng.below(3)]
        }
        o.network.uploadBitsPerSecond = UInt64(bandwidth)
        o.network.downloadBitsPerSecond = UInt64(bandwidth)
        o.slowFraction = pick(overrides.slowFraction) { clean ? 0 : [0, 0, 0.01, 0.05][rng.below(4)] }
        o.slowDelay = o.slowFraction > 0 ? UInt64(20 + rng.below(200)) : 0
        o.clockDriftPPM = pick(overrides.clockDriftPPM) { clean ? 0 : [0, 50, 200][rng.below(3)] }
        o.joinSpread = UInt64(rng.below(500))
        o.crashFraction = pick(overrides.crashFraction) { uniform(0.05, 0.4) }
        o.crashAt = UInt64(5_000 + rng.below(5_000))
        o.partitionFraction = uniform(0.1, 0.5)
        o.partitionOneWay = rng.below(2) == 0
        o.partitionAt = UInt64(5_000 + rng.below(5_000))
        o.partitionHealAt = o.partitionAt + UInt64(2_000 + rng.below(15_000))
        o.churnRate = pick(overrides.churnRate) { uniform(0.2, 3) }
        o.faultPhase = pick(overrides.faultPhase) {
            max(o.partitionHealAt, o.crashAt) + UInt64(5_000 + rng.below(10_000))
        }
        if o.faultPhase < o.partitionHealAt { o.partitionHealAt = o.faultPhase }
        if scenario == .rollout {  // drawn last: the other scenarios' choices for a seed stay as they were
            o.releaseBytes = pick(overrides.releaseBytes) { [64 << 10, 256 << 10, 1 << 20][rng.below(3)] }
            o.rolloutAt = pick(overrides.rolloutAt) { 2_000 + o.joinSpread + UInt64(rng.below(3_000)) }
            o.fitRollout()
        }
        if scenario == .adversary {  // drawn last too
            o.adversaryFraction = overrides.adversaryFraction ?? 0.05
            o.crashFraction = overrides.crashFraction ?? 0.1
            o.faultPhase = overrides.faultPhase ?? 60_000
            o.attackAt = min(o.faultPhase, UInt64(3_000 + rng.below(3_000)))
            o.crashAt = min(o.faultPhase, o.attackAt + UInt64(10_000 + rng.below(20_000)))
        }
        return o
    }
}

func formatFraction(_ v: Double) -> String {
    if v == 0 { return "0" }
    let scaled = Int((v * 10_000).rounded())
    let whole = scaled / 10_000
    var frac = String(scaled % 10_000)
    while frac.count < 4 { frac = "0" + frac }
    while frac.hasSuffix("0") { frac.removeLast() }
    return frac.isEmpty ? "\(whole)" : "\(whole).\(frac)"
}
