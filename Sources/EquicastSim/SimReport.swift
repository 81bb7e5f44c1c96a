/// What a finished run shows, in the terms the scenarios are judged by.
public struct SimReport: Sendable {
    public let options: SimOptions
    public let outcome: SimOutcome
    public let violations: [SimViolation]
    public let samples: [SimSample]
    /// First moment (ms) every node had the full view after the join; nil if never.
    public let joinConverged: UInt64?
    /// For crash and partition runs: the fault's moment and when the fleet next agreed (ms).
    public let faultAt: UInt64?
    public let faultConverged: UInt64?
    /// For crash runs: the moment (µs) the last survivor marked the last crashed node failed, from the nodes'
    /// events rather than the samples.
    public let crashDetected: UInt64?
    public let livenessConverged: UInt64?
    public let datagramsSent: UInt64
    public let datagramsLost: UInt64
    public let bytesSent: UInt64
    public let syncsStarted: UInt64
    public let records: SimRecordCounts
    public let eventsHandled: UInt64
    public let simulatedMilliseconds: UInt64
    public let rollout: SimRolloutResult?
    /// adversary: hostile messages sent, by kind (`Simulator.hostileKindNames`).
    public let hostileSent: [UInt64]
    /// adversary: present members that are no node of the fleet, over all live nodes, when the views came right.
    public let madeUpMembersAtEnd: Double?
    /// adversary, when the views never came right: how some of them were wrong at the end.
    public let viewErrors: [String]

    public init(simulator sim: Simulator, outcome: SimOutcome) {
        let o = sim.options
        options = o
        self.outcome = outcome
        violations = sim.violations
        samples = sim.samples
        // Joins are judged once every node has started.
        joinConverged =
            sim.samples.first {
                $0.milliseconds > o.joinSpread && $0.liveNodes == o.nodeCount && $0.convergedFraction == 1
            }?.milliseconds
        switch o.scenario {
        case .crash, .adversary: faultAt = o.crashAt
        case .partition: faultAt = o.partitionHealAt
        case .join, .churn, .rollout: faultAt = nil
        }
        livenessConverged = sim.livenessConvergedAt
        // A run ends at the first agreement after the fault phase, possibly between two samples.
        faultConverged = faultAt.flatMap { sim.firstFullConvergence(after: $0) ?? sim.livenessConvergedAt }
        crashDetected = sim.crashDetectedAt
        datagramsSent = sim.datagramsSent
        datagramsLost = sim.datagramsLost
        bytesSent = sim.bytesSent
        syncsStarted = sim.syncsStarted
        records = sim.recordCounts
        eventsHandled = sim.eventsHandled
        simulatedMilliseconds = sim.now / 1000
        rollout = sim.rolloutResult
        hostileSent = sim.hostileSent
        madeUpMembersAtEnd = sim.madeUpMembersAtEnd
        viewErrors = o.scenario == .adversary && sim.livenessConvergedAt == nil ? sim.honestViewErrors(limit: 8) : []
    }

    var gossipInterval: Double { Double(options.membership.gossipInterval) }

    /// log2(N), the yardstick for gossip rounds.
    public var log2N: Double {
        var n = Double(options.nodeCount)
        var l = 0.0
        while n >= 2 {
            n /= 2
            l += 1
        }
        return l + (n - 1)  // linear between powers of two: close enough for a yardstick
    }

    public var rounds: Double { Double(simulatedMilliseconds) / gossipInterval }

    public var summary: String {
        var lines: [String] = []
        let n = options.nodeCount
        if let j = joinConverged {
            lines.append(
                "join: \(n) nodes through one seed; every node has the full view at \(seconds(j)) s "
                    + "(\(oneDecimal(Double(j) / gossipInterval)) gossip rounds; 2*log2(N) = \(oneDecimal(2 * log2N)))")
        } else {
            lines.append("join: \(n) nodes; never all with the full view")
        }
        switch options.scenario {
        case .crash:
            let crashed = Int((Double(n) * options.crashFraction).rounded())
            // The exact moment when the nodes' events show it; the first sample with every view right otherwise.
            let detected =
                (crashDetected.map { $0 / 1000 } ?? faultConverged).map {
                    "every survivor has marked all of them failed at \(seconds($0)) s, \(seconds($0 - options.crashAt)) s after the crash"
                } ?? "the survivors never all marked them failed"
            lines.append("crash: \(crashed) of \(n) crashed at \(seconds(options.crashAt)) s; \(detected)")
        case .partition:
            let healed =
                faultConverged.map {
                    "the fleet agreed again at \(seconds($0)) s, \(seconds($0 - options.partitionHealAt)) s after healing"
                } ?? "the fleet never agreed again"
            lines.append("partition: \(seconds(options.partitionAt))-\(seconds(options.partitionHealAt)) s; \(healed)")
        case .rollout:
            if let r = rollout {
                lines.append(rolloutLine(r))
                if !r.behind.isEmpty { lines.append("not verified at the end: " + r.behind.joined(separator: "; ")) }
            }
        case .adversary:
            let hostile = options.adversaryFraction * Double(n)
            let sent = hostileSent.enumerated().filter { $0.element > 0 }.map {
                "\($0.element) \(Simulator.hostileKindNames[$0.offset])"
            }
            lines.append(
                "adversaries: \(Int(hostile.rounded())) of \(n) sent \(hostileSent.reduce(0, +)) hostile messages from "
                    + "\(seconds(options.attackAt)) to \(seconds(options.faultPhase)) s: "
                    + sent.joined(separator: ", "))
            let crashed = Int((Double(n) * options.crashFraction).rounded())
            let detected =
                crashDetected.map {
                    "every survivor has marked all of them failed at \(seconds($0 / 1000)) s, "
                        + "\(seconds($0 / 1000 - options.crashAt)) s after the crash (bound "
                        + "\(seconds(options.detectionBound)) s)"
                } ?? "the survivors never all marked them failed"
            lines.append("crash: \(crashed) honest nodes crashed at \(seconds(options.crashAt)) s; \(detected)")
            for e in viewErrors { lines.append("wrong view at the end: \(e)") }
            if let held = madeUpMembersAtEnd {
                lines.append(
                    "views: every live honest node right about every honest node at \(seconds(livenessConverged ?? 0)) s; "
                        + "\(oneDecimal(held)) made-up members present per honest node then")
            }
        case .churn, .join:
            break
        }
        if let l = livenessConverged {
            lines.append("liveness: faults stopped at \(seconds(options.faultPhase)) s; converged at \(seconds(l)) s")
        }
        let perNodeRound = Double(n) * max(1, rounds)
        lines.append(
            "traffic: \(oneDecimal(Double(datagramsSent) / perNodeRound)) datagrams and "
                + "\(oneDecimal(Double(bytesSent) / perNodeRound)) bytes per node per round over \(seconds(simulatedMilliseconds)) s; "
                + "\(datagramsLost) datagrams lost; \(syncsStarted) syncs")
        let r = records
        lines.append(
            "member records: \(r.gossipReceived) by gossip (\(r.gossipApplied) changed a view), "
                + "\(r.syncReceived) by sync (\(r.syncApplied) changed a view)")
        for v in violations.prefix(10) { lines.append("violation: \(v)") }
        lines.append("result: \(outcomeName)")
        return lines.joined(separator: "\n")
    }

    func rolloutLine(_ r: SimRolloutResult) -> String {
        let n = options.nodeCount
        let mib = { (b: UInt64) in oneDecimal(Double(b) / 1_048_576) }
        guard let start = r.startedAt else { return "rollout: the release was never handed over" }
        let least = SimRolloutResult.lowerBound(
            payloadBytes: r.payloadBytes, nodes: n, upload: options.network.uploadBitsPerSecond,
            download: options.network.downloadBitsPerSecond)
        var parts: [String] = []
        for (label, f) in [("50%", 0.5), ("90%", 0.9), ("100%", 1.0)] {
            if let t = r.time(toFraction: f, of: n) {
                parts.append("\(label) at \(seconds(t)) s (\(oneDecimal(Double(t) / Double(max(1, least))))x)")
            } else {
                parts.append("\(label) never")
            }
        }
        return "rollout: \(mib(r.imageBytes)) MiB image, \(r.chunkCount) chunks, \(mib(r.payloadBytes)) MiB to fetch, "
            + "handed to node 0 at \(seconds(start)) s; nodes verified: \(parts.joined(separator: ", ")) "
            + "after the hand-over; lower bound \(seconds(least)) s at \(options.network.uploadBitsPerSecond) bit/s; "
            + "the origin uploaded \(oneDecimal(r.originCopies)) copies, the busiest other node "
            + "\(oneDecimal(r.busiestPeerCopies))"
    }

    public var outcomeName: String {
        switch outcome {
        case .passed: return "passed"
        case .safety: return "SAFETY violation (exit 3)"
        case .liveness:
            return
                "LIVENESS failure: no convergence within \(seconds(options.livenessBound)) s of the faults stopping (exit 4)"
        case .crash: return "crash (exit 5)"
        }
    }

    /// One line per sample.
    public var csv: String {
        let rollout = options.scenario == .rollout
        var out = "ms,round,converged_fraction,live_nodes,datagrams_per_node,bytes_per_node,syncs"
        out += rollout ? ",verified_fraction\n" : "\n"
        for s in samples {
            let live = Double(max(1, s.liveNodes))
            out +=
                "\(s.milliseconds),\(oneDecimal(Double(s.milliseconds) / gossipInterval)),\(fourDecimals(s.convergedFraction)),"
            out +=
                "\(s.liveNodes),\(fourDecimals(Double(s.datagrams) / live)),\(oneDecimal(Double(s.bytes) / live)),\(s.syncs)"
            out += rollout ? ",\(fourDecimals(s.verifiedFraction))\n" : "\n"
        }
        return out
    }
}

func seconds(_ ms: UInt64) -> String {
    let tenths = (ms + 5) / 10
    let frac = tenths % 100
    return "\(tenths / 100).\(frac < 10 ? "0" : "")\(frac)"
}

func oneDecimal(_ v: Double) -> String {
    let t = Int((v * 10).rounded())
    return "\(t / 10).\(abs(t % 10))"
}

func fourDecimals(_ v: Double) -> String {
    let t = Int((v * 10_000).rounded())
    var f = String(abs(t % 10_000))
    while f.count < 4 { f = "0" + f }
    return "\(t / 10_000).\(f)"
}
