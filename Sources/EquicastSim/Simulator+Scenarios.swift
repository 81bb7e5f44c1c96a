import EquicastCore

#if canImport(Glibc)
    import Glibc
#endif

/// The scenarios' fault schedules (join, crash, partition, churn, rollout), all drawn from the seed before the
/// run starts, and how each fault is carried out when its moment comes. The rollout's hand-over is in
/// Simulator+Rollout.swift.
extension Simulator {
    func scheduleFaults() {
        let o = options
        let ms: (UInt64) -> UInt64 = { $0 * 1000 }
        switch o.scenario {
        case .join:
            break
        case .adversary:
            scheduleAttack()
        case .rollout:
            queue.push(.fault(.rolloutStart), at: ms(o.rolloutAt))
        case .crash:
            let victims = pickNodes(fraction: o.crashFraction)
            crashVictims = victims.count
            for v in victims { queue.push(.fault(.crash(Int32(v))), at: ms(o.crashAt)) }
        case .partition:
            queue.push(.fault(.partition(oneWay: o.partitionOneWay)), at: ms(o.partitionAt))
            queue.push(.fault(.heal), at: ms(o.partitionHealAt))
        case .churn:
            // Poisson arrivals of churn events after the join settles.
            var t = 5_000.0
            let end = Double(o.faultPhase) - 1_000
            while o.churnRate > 0 {
                t += -1000 * log(max(rng.unit(), 1e-12)) / o.churnRate
                if t >= end { break }
                let victim = 1 + rng.below(max(1, o.nodeCount - 1))
                let at = ms(UInt64(t))
                switch rng.below(4) {
                case 0:
                    queue.push(.fault(.crash(Int32(victim))), at: at)
                    queue.push(
                        .fault(.restart(Int32(victim), keepState: true)), at: at + ms(UInt64(500 + rng.below(8_000))))
                case 1:
                    queue.push(.fault(.crash(Int32(victim))), at: at)
                    queue.push(
                        .fault(.restart(Int32(victim), keepState: false)), at: at + ms(UInt64(500 + rng.below(8_000))))
                case 2:
                    queue.push(.fault(.leave(Int32(victim))), at: at)
                    queue.push(
                        .fault(.restart(Int32(victim), keepState: true)), at: at + ms(UInt64(3_000 + rng.below(8_000))))
                default:
                    queue.push(.fault(.crash(Int32(victim))), at: at)  // stays down until the fault phase ends
                }
            }
        }
        queue.push(.fault(.endFaultPhase), at: ms(o.faultPhase))
    }

    /// A random subset of nodes other than node 0 (the seed), `fraction` of the fleet.
    func pickNodes(fraction: Double) -> [Int] {
        let count = min(options.nodeCount - 1, Int((Double(options.nodeCount) * fraction).rounded()))
        var candidates = Array(1..<options.nodeCount)
        for i in 0..<count {
            let j = i + rng.below(candidates.count - i)
            candidates.swapAt(i, j)
        }
        return Array(candidates.prefix(count))
    }

    func apply(_ f: Fault) {
        switch f {
        case .crash(let i):
            stopNode(Int(i))
        case .restart(let i, let keepState):
            let s = Int(i)
            if slots[s].up {
                // A leaving node exits once its announcement is out; a restart replaces it.
                stopNode(s)
            }
            startNode(s, keepState: keepState)
        case .leave(let i):
            let s = Int(i)
            guard slots[s].up, let node = slots[s].node else { return }
            node.handleCommand(.leave, now: nodeClock(s))
            flush(s)
            // The process exits after its leave rounds; a sim node stops answering a little later.
            queue.push(.fault(.crash(i)), at: now + 3 * options.membership.gossipInterval * 1000)
        case .rolloutStart:
            startRollout()
        case .partition(let oneWay):
            network.partition(pickNodes(fraction: options.partitionFraction), oneWay: oneWay)
        case .heal:
            network.heal()
        case .attack:
            attack()
        case .endFaultPhase:
            faultPhaseOver = true
            network.partitionOn = false
            // Liveness: crashed nodes of a churn run come back with their state; a crash run's victims stay
            // down (the survivors must agree they are gone).
            if options.scenario == .churn {
                for s in slots.indices where !slots[s].up { startNode(s, keepState: true) }
            }
            checkConvergence()
        }
    }
}
