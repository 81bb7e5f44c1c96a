/// The piggyback queue: changes waiting to be gossiped, each sent a bounded number of times (about
/// lambda * log(N), enough for epidemic spread to reach every node with high probability), least-sent and newest
/// first. A newer change about the same member replaces the older one, so the queue never carries stale news.
struct GossipQueue {
    enum Key: Hashable {
        case member(NodeID)
        case event(NodeID, UInt64)
    }

    struct Entry {
        var item: GossipItem
        var transmits: Int
        var order: UInt64
    }

    /// Most entries held; beyond it the most-sent entry is dropped (it has had the most chances to spread).
    let capacity: Int
    private(set) var entries: [Key: Entry] = [:]
    private var counter: UInt64 = 0

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    static func key(_ item: GossipItem) -> Key {
        switch item {
        case .member(let u): return .member(u.id)
        case .event(let e): return .event(e.origin, e.id)
        }
    }

    mutating func enqueue(_ item: GossipItem) {
        counter &+= 1
        let key = GossipQueue.key(item)
        if entries[key] == nil && entries.count >= capacity, let victim = mostSent() {
            entries[victim] = nil
        }
        entries[key] = Entry(item: item, transmits: 0, order: counter)
    }

    private func mostSent() -> Key? {
        var worst: (Key, Int, UInt64)?
        for (k, e) in entries
        where worst == nil || e.transmits > worst!.1 || (e.transmits == worst!.1 && e.order < worst!.2) {
            worst = (k, e.transmits, e.order)
        }
        return worst?.0
    }

    /// Takes items for one packet: at most `byteBudget` encoded bytes and `itemsMax` items, least-sent then
    /// newest first; items about `priority` (the packet's destination) go first, so a suspected member hears of
    /// its suspicion from the next packet it receives. Each taken item's count rises; items sent `limit` times
    /// are dropped.
    mutating func take(byteBudget: Int, itemsMax: Int, limit: Int, priority: NodeID?) -> [GossipItem] {
        if entries.isEmpty || byteBudget <= 0 { return [] }
        var ordered = Array(entries)
        ordered.sort { a, b in
            let pa = priority != nil && a.key == .member(priority!)
            let pb = priority != nil && b.key == .member(priority!)
            if pa != pb { return pa }
            if a.value.transmits != b.value.transmits { return a.value.transmits < b.value.transmits }
            return a.value.order > b.value.order
        }
        var out: [GossipItem] = []
        var used = 0
        for (key, entry) in ordered {
            if out.count >= itemsMax { break }
            let size = entry.item.encodedByteCount
            if used + size > byteBudget { continue }
            used += size
            out.append(entry.item)
            if entry.transmits + 1 >= limit {
                entries[key] = nil
            } else {
                entries[key]!.transmits += 1
            }
        }
        return out
    }
}
