/// A sliding window over one sender's sequence numbers (the IPsec/WireGuard scheme): the highest sequence seen,
/// and a bitmap of which of the `ReplayWindow.size` numbers below it have been accepted. Frames may arrive out of
/// order within the window; anything older, or seen before, is refused.
public struct ReplayWindow: Equatable {
    /// How far behind the newest frame an out-of-order frame may arrive. 256 frames cover the reordering a
    /// datagram network produces in practice at gossip rates.
    public static let size = 256
    public private(set) var highest: UInt64 = 0
    private var seen: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var started = false

    public init() {}

    public static func == (a: ReplayWindow, b: ReplayWindow) -> Bool {
        a.highest == b.highest && a.started == b.started && a.seen == b.seen
    }

    public enum Verdict: Equatable, Sendable {
        case fresh
        case duplicate
        case stale
    }

    /// Whether `sequence` would be accepted, without recording it. Frames are checked before authentication and
    /// recorded only after, so a forged frame cannot move the window.
    public func check(_ sequence: UInt64) -> Verdict {
        if !started || sequence > highest { return .fresh }
        let behind = highest - sequence
        if behind >= UInt64(ReplayWindow.size) { return .stale }
        return bit(Int(behind)) ? .duplicate : .fresh
    }

    /// Records an authenticated `sequence`; the caller has checked it is fresh.
    public mutating func record(_ sequence: UInt64) {
        if !started {
            started = true
            highest = sequence
            seen = (1, 0, 0, 0)
            return
        }
        if sequence > highest {
            shift(by: sequence - highest)
            highest = sequence
            setBit(0)
        } else {
            let behind = highest - sequence
            if behind < UInt64(ReplayWindow.size) { setBit(Int(behind)) }
        }
    }

    private func word(_ i: Int) -> UInt64 {
        switch i {
        case 0: return seen.0
        case 1: return seen.1
        case 2: return seen.2
        default: return seen.3
        }
    }

    private mutating func setWord(_ i: Int, _ v: UInt64) {
        switch i {
        case 0: seen.0 = v
        case 1: seen.1 = v
        case 2: seen.2 = v
        default: seen.3 = v
        }
    }

    private func bit(_ i: Int) -> Bool { word(i / 64) & (1 << UInt64(i % 64)) != 0 }

    private mutating func setBit(_ i: Int) { setWord(i / 64, word(i / 64) | (1 << UInt64(i % 64))) }

    /// Moves the window forward: bit k (k behind highest) becomes bit k + n.
    private mutating func shift(by n: UInt64) {
        if n >= UInt64(ReplayWindow.size) {
            seen = (0, 0, 0, 0)
            return
        }
        let wordShift = Int(n / 64)
        let bitShift = UInt64(n % 64)
        func shifted(_ i: Int) -> UInt64 {
            let src = i - wordShift
            if src < 0 { return 0 }
            var v = word(src) << bitShift
            if bitShift > 0 && src >= 1 { v |= word(src - 1) >> (64 - bitShift) }
            return v
        }
        seen = (shifted(0), shifted(1), shifted(2), shifted(3))
    }
}

/// Replay windows for the senders a node hears from, bounded in number. Only authenticated frames create
/// entries, so only fleet-key holders can fill it. Windows live in two generations: when the current one holds
/// half the capacity it becomes the previous one and the old previous one is forgotten, so every sender heard
/// from within the last half-capacity of new senders keeps its window, at O(1) cost per frame. A forgotten
/// sender's old frames could be accepted once more, which the membership layer tolerates (its updates carry
/// incarnation numbers, a replayed probe costs an ack).
public struct ReplayTable {
    public let capacity: Int
    private var current: [NodeID: ReplayWindow] = [:]
    private var previous: [NodeID: ReplayWindow] = [:]

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var count: Int { current.count + previous.count }

    private var generationSize: Int { max(1, capacity / 2) }

    public func check(sender: NodeID, sequence: UInt64) -> ReplayWindow.Verdict {
        (current[sender] ?? previous[sender])?.check(sequence) ?? .fresh
    }

    public mutating func record(sender: NodeID, sequence: UInt64) {
        if current[sender] != nil {
            current[sender]!.record(sequence)
            return
        }
        var window = previous.removeValue(forKey: sender) ?? ReplayWindow()
        window.record(sequence)
        if current.count >= generationSize {
            previous = current
            current = [:]
        }
        current[sender] = window
    }

    /// Forgets a sender (it left the fleet).
    public mutating func remove(sender: NodeID) {
        current[sender] = nil
        previous[sender] = nil
    }
}
