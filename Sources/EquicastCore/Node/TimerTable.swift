/// Every deadline a node keeps, one per kind, each owned by one part. The order of the cases is the order in
/// which `Node.handleTimeout` runs the timers that are due (probe timeouts before the probe that may replace
/// them, the gossip round before the release work that reads its round, reclaiming last); a timer not due does
/// nothing.
enum NodeTimer: Int, CaseIterable {
    // Membership.
    /// The earliest deadline of the probes in flight (direct, then indirect).
    case probeTimeout
    /// The earliest deadline of the probes this node forwards for others.
    case forwardTimeout
    /// The earliest moment a suspicion runs out.
    case suspicion
    /// The earliest moment a pull in flight is given up.
    case syncTimeout
    /// The next periodic probe.
    case probe
    /// The next gossip round (brought forward by news).
    case gossip
    // Dissemination.
    /// The next Trickle advertisement or interval end.
    case trickle
    /// The earliest deadline of the manifest and chunk requests in flight.
    case requestTimeout
    /// A download stopped by a storage failure tries again.
    case storageRetry
    /// Bitfields owed to peers go out (set only while some are owed).
    case haves
    /// More members are asked what they hold (set only while a download has no request in flight).
    case discovery
    // Membership, after the release work.
    /// The next sync with a failed member (a healed partition).
    case reconnect
    /// The next sweep that forgets long-failed and departed members.
    case reclaim
}

/// A fixed table of deadlines (absolute ms, `.max` when unset), indexed by `NodeTimer` (quinn-proto's
/// `TimerTable`). The node's next wake-up is the earliest entry. Inline storage: no heap array to check for
/// uniqueness at every write.
struct TimerTable {
    /// `NodeTimer.allCases.count` (a test checks it): an inline array's size must be a literal.
    static let count = 13
    private var deadlines = InlineArray<13, UInt64>(repeating: .max)

    subscript(_ timer: NodeTimer) -> UInt64 {
        get { deadlines[timer.rawValue] }
        set { deadlines[timer.rawValue] = newValue }
    }

    /// Moves `timer` earlier to `deadline`, never later.
    mutating func bringForward(_ timer: NodeTimer, to deadline: UInt64) {
        if deadline < deadlines[timer.rawValue] { deadlines[timer.rawValue] = deadline }
    }

    mutating func stop(_ timer: NodeTimer) { deadlines[timer.rawValue] = .max }

    func isDue(_ timer: NodeTimer, at now: UInt64) -> Bool { now >= deadlines[timer.rawValue] }

    /// The earliest deadline (`.max`: none).
    var next: UInt64 {
        var t = UInt64.max
        for i in deadlines.indices where deadlines[i] < t { t = deadlines[i] }
        return t
    }
}
