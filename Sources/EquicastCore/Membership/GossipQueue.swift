import EquicastCrypto

/// The piggyback queue: changes waiting to be gossiped, each sent a bounded number of times (about
/// lambda * log(N), enough for epidemic spread to reach every node with high probability), least-sent first and,
/// among equally sent, the most recently queued or sent first. A newer change about the same member replaces
/// the older one, so the queue never carries stale news.
///
/// Entries sit in one list per transmit count, so filling a packet costs O(items taken), not a sort of the
/// whole queue (which a simulated 10,000-node join, with a thousand changes queued on every node, cannot
/// afford). An entry keeps its position in `entries` for as long as it is queued, and the lists refer to it by
/// position and stamp: telling whether a reference is current reads the entry, with no key lookup. Lists are
/// cleaned lazily: a moved or replaced entry leaves a stale reference behind, skipped and dropped when met.
struct GossipQueue {
    enum Key: Hashable {
        case member(NodeID)
        case event(NodeID, UInt64)
        case release(UInt64)
        case status(NodeID)
    }

    struct Entry {
        let key: Key
        var item: GossipItem
        var transmits: Int
        /// Identifies this entry's current place in the lists; a reference with another stamp is stale. 0 marks a
        /// free position.
        var stamp: UInt64
        /// The `take` call that last took this entry (so one packet carries it once).
        var takenBy: UInt64 = 0
    }

    private struct Reference {
        let position: Int32
        let stamp: UInt64
    }

    /// Most entries held; beyond it the most-sent entry is dropped (it has had the most chances to spread).
    let capacity: Int
    /// The entries by position; free positions (stamp 0) are listed in `freePositions` and reused first.
    private var entries: [Entry] = []
    private var freePositions: [Int32] = []
    /// Entries queued.
    private(set) var count = 0
    /// Open addressing from key to position in `entries` (`vacant`, `removed` or a position), twice the capacity
    /// in size: every packet a node receives looks its keys up here, and the standard library's seeded hashing
    /// cost several times more per lookup.
    private var index: [Int32] = []
    private var indexUsed = 0  // positions and `removed` marks
    private let salt: UInt64
    /// levels[t]: references to entries sent t times, oldest first.
    private var levels: [[Reference]] = []
    private var liveInLevel: [Int] = []
    /// heads[t]: every reference before this index in levels[t] is stale (found by eviction).
    private var heads: [Int] = []
    private var stamp: UInt64 = 0
    private var takes: UInt64 = 0

    private static let vacant: Int32 = -1
    private static let removed: Int32 = -2

    /// - Parameter salt: mixed into key hashes, so that chosen ids cannot pile up in one probe run.
    init(capacity: Int, salt: UInt64 = 0) {
        self.capacity = capacity
        self.salt = salt
    }

    var isEmpty: Bool { count == 0 }

    /// Entries not yet sent at all.
    var unsentCount: Int { liveInLevel.first ?? 0 }

    /// The keys queued, in no order.
    var keys: [Key] { entries.filter { $0.stamp != 0 }.map { $0.key } }

    func contains(_ key: Key) -> Bool { position(of: key) != nil }

    static func key(_ item: GossipItem) -> Key {
        switch item {
        case .member(let u): return .member(u.id)
        case .event(let e): return .event(e.origin, e.id)
        case .release(let a): return .release(a.releaseID.words.0)
        case .status(let st): return .status(st.node)
        }
    }

    // MARK: the key index

    private func home(_ key: Key) -> Int {
        let code: UInt64
        switch key {
        case .member(let id): code = id.rawValue
        case .event(let origin, let id): code = origin.rawValue ^ (id &* 0x9e37_79b9_7f4a_7c15) ^ 1
        case .release(let word): code = word ^ 2
        case .status(let id): code = id.rawValue ^ 0x5bd1_e995_5bd1_e995
        }
        return Int(truncatingIfNeeded: SplitMix64.mix(code ^ salt)) & (index.count - 1)
    }

    private func position(of key: Key) -> Int? {
        guard !index.isEmpty else { return nil }
        var i = home(key)
        while true {
            let p = index[i]
            if p == GossipQueue.vacant { return nil }
            if p >= 0 && entries[Int(p)].key == key { return Int(p) }
            i = (i + 1) & (index.count - 1)
        }
    }

    /// Adds `entry` at a free position (or a new one) and indexes it; returns the position.
    private mutating func insert(_ entry: Entry) -> Int {
        if index.isEmpty || (indexUsed + 1) * 4 > index.count * 3 { rebuildIndex() }
        let p: Int
        if let free = freePositions.popLast() {
            p = Int(free)
            entries[p] = entry
        } else {
            p = entries.count
            entries.append(entry)
        }
        var i = home(entry.key)
        while index[i] >= 0 { i = (i + 1) & (index.count - 1) }
        if index[i] == GossipQueue.vacant { indexUsed += 1 }
        index[i] = Int32(p)
        count += 1
        return p
    }

    /// Removes the entry at `position`, whose references all become stale. The position is reused by a later
    /// insert; callers give the storage back once the queue is empty.
    private mutating func remove(at position: Int) {
        var i = home(entries[position].key)
        while index[i] != Int32(position) { i = (i + 1) & (index.count - 1) }
        index[i] = GossipQueue.removed
        liveInLevel[entries[position].transmits] -= 1
        entries[position].stamp = 0
        freePositions.append(Int32(position))
        count -= 1
    }

    /// Sizes the index for the capacity (at least) and clears its `removed` marks.
    private mutating func rebuildIndex() {
        var size = 16
        while size < 2 * max(capacity, count + 1) { size *= 2 }
        index = [Int32](repeating: GossipQueue.vacant, count: size)
        indexUsed = 0
        for (p, e) in entries.enumerated() where e.stamp != 0 {
            var i = home(e.key)
            while index[i] != GossipQueue.vacant { i = (i + 1) & (size - 1) }
            index[i] = Int32(p)
            indexUsed += 1
        }
    }

    // MARK: queueing

    /// Drops member news already sent at least once whose effect the view digest covers (alive, failed, left:
    /// suspicion is not in the digest and events are not member news). Called when peers show a view equal to
    /// ours: the news has spread, and retransmitting it would only repeat what everyone holds.
    mutating func dropSpreadMemberNews() {
        var p = entries.count - 1
        while p >= 0 && count > 0 {
            let e = entries[p]
            if e.stamp != 0 && e.transmits > 0, case .member(let u) = e.item, u.state != .suspect {
                remove(at: p)
            }
            p -= 1
        }
        if count == 0 { releaseStorage() }
    }

    /// An empty queue gives its storage back (it is sized for a burst and idle most of the time).
    private mutating func releaseStorage() {
        entries = []
        freePositions = []
        index = []
        indexUsed = 0
        levels = []
        liveInLevel = []
        heads = []
    }

    mutating func enqueue(_ item: GossipItem) {
        let key = GossipQueue.key(item)
        if let p = position(of: key) {
            liveInLevel[entries[p].transmits] -= 1
            entries[p].item = item
            file(at: p, transmits: 0)
            return
        }
        if count >= capacity { evictMostSent() }
        let p = insert(Entry(key: key, item: item, transmits: 0, stamp: 0))
        file(at: p, transmits: 0)
    }

    /// Files the entry at `position` at `transmits` sends, under a new stamp.
    private mutating func file(at position: Int, transmits: Int) {
        stamp &+= 1
        while levels.count <= transmits {
            levels.append([])
            liveInLevel.append(0)
            heads.append(0)
        }
        entries[position].transmits = transmits
        entries[position].stamp = stamp
        levels[transmits].append(Reference(position: Int32(position), stamp: stamp))
        liveInLevel[transmits] += 1
        if levels[transmits].count > 2 * liveInLevel[transmits] + 64 { compact(transmits) }
    }

    /// True unless `r` is stale.
    private func isLive(_ r: Reference) -> Bool { entries[Int(r.position)].stamp == r.stamp }

    /// Drops stale references, into storage sized to what is left.
    private mutating func compact(_ level: Int) {
        var kept: [Reference] = []
        kept.reserveCapacity(liveInLevel[level])
        for r in levels[level] where isLive(r) { kept.append(r) }
        levels[level] = kept
        heads[level] = 0
    }

    private mutating func evictMostSent() {
        for level in stride(from: levels.count - 1, through: 0, by: -1) where liveInLevel[level] > 0 {
            // The oldest live entry of the level.
            var j = heads[level]
            while j < levels[level].count && !isLive(levels[level][j]) { j += 1 }
            guard j < levels[level].count else { continue }
            remove(at: Int(levels[level][j].position))
            heads[level] = j + 1
            return
        }
    }

    /// Records one more transmission of the entry at `position`; drops it once sent `limit` times.
    private mutating func sent(at position: Int, limit: Int) {
        let transmits = entries[position].transmits
        if transmits + 1 >= limit {
            remove(at: position)
        } else {
            liveInLevel[transmits] -= 1
            file(at: position, transmits: transmits + 1)
        }
    }

    /// Takes items for one packet: at most `byteBudget` encoded bytes and `itemsMax` items, least-sent then
    /// newest first; the item about `priority` (the packet's destination) goes first, so a suspected member
    /// hears of its suspicion from the next packet it receives. Each taken item's count rises; items sent
    /// `limit` times are dropped. `unsentOnly`: only items not sent before (a further packet to the same
    /// destination in one round: it must not spend the first packet's items on it again, and items already on
    /// their way are better left to the next rounds' other destinations).
    mutating func take(
        byteBudget: Int, itemsMax: Int, limit: Int, priority: NodeID?, unsentOnly: Bool = false
    ) -> [GossipItem] {
        if count == 0 || byteBudget <= 0 || itemsMax <= 0 { return [] }
        takes &+= 1
        var out: [GossipItem] = []
        var taken: [Int32] = []
        var used = 0
        if let p = priority, let at = position(of: .member(p)), entries[at].item.encodedByteCount <= byteBudget {
            entries[at].takenBy = takes
            out.append(entries[at].item)
            taken.append(Int32(at))
            used = entries[at].item.encodedByteCount
        }
        var level = 0
        let levelEnd = unsentOnly ? min(1, levels.count) : levels.count
        while level < levelEnd && out.count < itemsMax && used < byteBudget {
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
                guard isLive(r) else { continue }
                let p = Int(r.position)
                if entries[p].takenBy == takes {
                    skipped.append(r)
                    continue
                }
                let size = entries[p].item.encodedByteCount
                if used + size > byteBudget {
                    skipped.append(r)
                    continue
                }
                used += size
                entries[p].takenBy = takes
                out.append(entries[p].item)
                taken.append(r.position)
            }
            // Everything from i + 1 on was visited: keep only what was skipped, in its original order.
            levels[level].removeSubrange((i + 1)...)
            levels[level].append(contentsOf: skipped.reversed())
            heads[level] = min(heads[level], i + 1)
            if levels[level].capacity > 4 * levels[level].count + 256 { compact(level) }
            level += 1
        }
        // Positions stay put while entries are dropped: only `insert` reuses them.
        for p in taken { sent(at: Int(p), limit: limit) }
        if count == 0 { releaseStorage() }
        return out
    }
}
