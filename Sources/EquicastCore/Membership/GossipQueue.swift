import EquicastCrypto

/// The piggyback queue: changes waiting to be gossiped, each sent a bounded number of times (about
/// lambda * log(N), enough for epidemic spread to reach every node with high probability), least-sent first and,
/// among equally sent, the most recently queued or sent first. A newer change about the same member replaces
/// the older one, so the queue never carries stale news.
///
/// Entries sit in one list per transmit count, so filling a packet costs O(items taken), not a sort of the
/// whole queue (which a simulated 10,000-node join, with a thousand changes queued on every node, cannot
/// afford). Lists are cleaned lazily: a moved or replaced entry leaves a stale reference behind, skipped and
/// dropped when met.
struct GossipQueue {
    enum Key: Hashable {
        case member(NodeID)
        case event(NodeID, UInt64)
        case release(UInt64)
        case status(NodeID)
    }

    struct Entry {
        var item: GossipItem
        var transmits: Int
        /// Identifies this entry's current position; a reference with another stamp is stale.
        var stamp: UInt64
    }

    private struct Reference {
        let key: Key
        let stamp: UInt64
    }

    /// Most entries held; beyond it the most-sent entry is dropped (it has had the most chances to spread).
    let capacity: Int
    private(set) var entries: [Key: Entry] = [:]
    /// levels[t]: references to entries sent t times, oldest first.
    private var levels: [[Reference]] = []
    private var liveInLevel: [Int] = []
    /// heads[t]: every reference before this index in levels[t] is stale (found by eviction).
    private var heads: [Int] = []
    private var stamp: UInt64 = 0

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    static func key(_ item: GossipItem) -> Key {
        switch item {
        case .member(let u): return .member(u.id)
        case .event(let e): return .event(e.origin, e.id)
        case .release(let a): return .release(a.releaseID.words.0)
        case .status(let st): return .status(st.node)
        }
    }

    /// Drops member news already sent at least once whose effect the view digest covers (alive, failed, left:
    /// suspicion is not in the digest and events are not member news). Called when peers show a view equal to
    /// ours: the news has spread, and retransmitting it would only repeat what everyone holds.
    mutating func dropSpreadMemberNews() {
        var drop: [Key] = []
        for (key, e) in entries where e.transmits > 0 {
            guard case .member(let u) = e.item, u.state != .suspect else { continue }
            drop.append(key)
        }
        for key in drop {
            liveInLevel[entries[key]!.transmits] -= 1
            entries[key] = nil
        }
        if entries.isEmpty { releaseStorage() }
    }

    /// An empty queue gives its storage back (it is sized for a burst and idle most of the time).
    private mutating func releaseStorage() {
        entries = [:]
        levels = []
        liveInLevel = []
        heads = []
    }

    mutating func enqueue(_ item: GossipItem) {
        let key = GossipQueue.key(item)
        if let old = entries[key] {
            liveInLevel[old.transmits] -= 1
        } else if entries.count >= capacity {
            evictMostSent()
        }
        place(key, item: item, transmits: 0)
    }

    private mutating func place(_ key: Key, item: GossipItem, transmits: Int) {
        stamp &+= 1
        while levels.count <= transmits {
            levels.append([])
            liveInLevel.append(0)
            heads.append(0)
        }
        entries[key] = Entry(item: item, transmits: transmits, stamp: stamp)
        levels[transmits].append(Reference(key: key, stamp: stamp))
        liveInLevel[transmits] += 1
        if levels[transmits].count > 2 * liveInLevel[transmits] + 64 { compact(transmits) }
    }

    private func isLive(_ r: Reference) -> Bool { entries[r.key]?.stamp == r.stamp }

    /// Drops stale references, into storage sized to what is left.
    private mutating func compact(_ level: Int) {
        var live: [Reference] = []
        live.reserveCapacity(liveInLevel[level])
        for r in levels[level] where isLive(r) { live.append(r) }
        levels[level] = live
        heads[level] = 0
    }

    private mutating func evictMostSent() {
        for level in stride(from: levels.count - 1, through: 0, by: -1) where liveInLevel[level] > 0 {
            // The oldest live entry of the level.
            var j = heads[level]
            while j < levels[level].count && !isLive(levels[level][j]) { j += 1 }
            guard j < levels[level].count else { continue }
            entries[levels[level][j].key] = nil
            liveInLevel[level] -= 1
            heads[level] = j + 1
            return
        }
    }

    /// Records one more transmission of `key`; drops it once sent `limit` times.
    private mutating func sent(_ key: Key, limit: Int) {
        guard let e = entries[key] else { return }
        liveInLevel[e.transmits] -= 1
        if e.transmits + 1 >= limit {
            entries[key] = nil
        } else {
            place(key, item: e.item, transmits: e.transmits + 1)
        }
    }

    /// Takes items for one packet: at most `byteBudget` encoded bytes and `itemsMax` items, least-sent then
    /// newest first; the item about `priority` (the packet's destination) goes first, so a suspected member
    /// hears of its suspicion from the next packet it receives. Each taken item's count rises; items sent
    /// `limit` times are dropped.
    mutating func take(byteBudget: Int, itemsMax: Int, limit: Int, priority: NodeID?) -> [GossipItem] {
        if entries.isEmpty || byteBudget <= 0 || itemsMax <= 0 { return [] }
        var out: [GossipItem] = []
        var taken: [Key] = []
        var used = 0
        if let p = priority, let e = entries[.member(p)], e.item.encodedByteCount <= byteBudget {
            out.append(e.item)
            taken.append(.member(p))
            used = e.item.encodedByteCount
        }
        var level = 0
        while level < levels.count && out.count < itemsMax && used < byteBudget {
            if liveInLevel[level] == 0 {
                // Storage is released, not kept: a 10,000-node simulation holds one queue per node, and a
                // level that once held a burst of news would otherwise keep that burst's storage for good.
                levels[level] = []
                heads[level] = 0
                level += 1
                continue
            }
            // Newest first: walk the level from its end, dropping stale references met on the way.
            var i = levels[level].count - 1
            var skipped: [Reference] = []  // live but too big for what is left of the budget
            // A run of items too big for what is left means the packet is as full as it will get.
            while i >= heads[level] && out.count < itemsMax && skipped.count < 16 {
                let r = levels[level][i]
                i -= 1
                guard let e = entries[r.key], e.stamp == r.stamp else { continue }
                if taken.contains(r.key) {
                    skipped.append(r)
                    continue
                }
                let size = e.item.encodedByteCount
                if used + size > byteBudget {
                    skipped.append(r)
                    continue
                }
                used += size
                out.append(e.item)
                taken.append(r.key)
            }
            // Everything from i + 1 on was visited: keep only what was skipped, in its original order.
            levels[level].removeSubrange((i + 1)...)
            levels[level].append(contentsOf: skipped.reversed())
            heads[level] = min(heads[level], i + 1)
            if levels[level].capacity > 4 * levels[level].count + 256 { compact(level) }
            level += 1
        }
        for key in taken { sent(key, limit: limit) }
        if entries.isEmpty { releaseStorage() }
        return out
    }
}
