import EquicastCore

/// How a run ended. The raw values are the process exit codes of `equicast sim`.
public enum SimOutcome: Int32, Sendable {
    case passed = 0
    /// An invariant broke (see `SimViolation`).
    case safety = 3
    /// The fleet did not converge within the bound after the faults stopped.
    case liveness = 4
    /// The code under test trapped (reported by the CLI's signal handler).
    case crash = 5
}

/// A broken invariant, with the simulated time it was seen.
public struct SimViolation: Equatable, Sendable, CustomStringConvertible {
    public let atMilliseconds: UInt64
    public let what: String
    public var description: String { "at \(atMilliseconds) ms: \(what)" }
}

/// The invariants checked while a run goes on: a violation stops it (`SimOutcome.safety`) and is printed with
/// the command that reproduces the run. Liveness (convergence once the faults stop) is judged in `run`.
extension Simulator {
    func violate(_ what: String) {
        violations.append(SimViolation(atMilliseconds: now / 1000, what: what))
    }
}

/// The invariants each worker checks on the nodes it runs.
extension SimWorker {
    func violate(node: Int, _ what: String) {
        outputs.append(SimOutput(time: now, node: Int32(node), kind: .violation(what)))
    }

    func checkIncarnation(_ s: Int, _ node: Node) {
        if node.incarnation < slots[s].incarnationSeen {
            violate(
                node: s,
                "node \(s) (\(node.id)) incarnation went back from \(slots[s].incarnationSeen) to \(node.incarnation)")
        }
        slots[s].incarnationSeen = node.incarnation
    }

    /// A node never holds itself suspect or failed (it refutes).
    func checkSelfView(_ s: Int, _ node: Node) {
        if let me = node.member(node.id), me.state == .failed || me.state == .suspect {
            violate(node: s, "node \(s) (\(node.id)) holds itself \(me.state)")
        }
    }

    /// Verdicts "failed": counted when about a node that is down, a violation when about a live node on a
    /// network that loses nothing.
    func observe(_ s: Int, _ e: NodeEvent) {
        guard case .memberFailed(let id) = e, let target = sim.slotOfID[id].map(Int.init) else { return }
        // `up` changes only between windows, so reading a slot another thread runs is safe here.
        if !slots[target].up {
            failedVerdicts += 1
            lastFailedVerdict = max(lastFailedVerdict, now)
        } else if sim.options.networkIsPerfect && sim.congestionDrops == 0 {
            // On a perfect network only a node that is really down may be declared failed.
            violate(
                node: s, "node \(s) declared live node \(target) (\(id)) failed on a network without loss or partitions"
            )
        }
    }
}
