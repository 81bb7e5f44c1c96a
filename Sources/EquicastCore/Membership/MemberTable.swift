/// Interns member ids as dense slot numbers and keeps each member's announced address once.
///
/// A node's member table is an array indexed by slot, not a hash table of rows: 32 bytes per member instead of
/// about 150, which is what lets a simulator hold 10,000 nodes with full views of each other. A daemon gives its
/// node a private directory, whose slots are freed when the node forgets a member; a simulator gives every node
/// the same shared directory (ids and addresses stored once for the whole fleet, slots never freed). Sharing
/// changes nothing a node can observe: an address a node believes that differs from the directory's is kept
/// in the node's own table.
public final class MemberDirectory {
    /// True when several nodes use this directory.
    public let isShared: Bool
    private(set) var ids: [NodeID] = []
    private(set) var addresses: [SocketAddress] = []
    /// Each member's public key, once a record it signed has been checked; empty before.
    private(set) var keys: [[UInt8]] = []
    private var slots: IDIndex
    private var freeSlots: [UInt32] = []

    /// - Parameter salt: mixed into the id hash, so that ids chosen to collide cannot slow lookups down; a node
    ///   draws it from its random generator.
    public init(shared: Bool, salt: UInt64) {
        self.isShared = shared
        self.slots = IDIndex(salt: salt)
    }

    /// Slots handed out so far (the length a table indexed by slot may need).
    public var slotCount: Int { ids.count }

    func slot(of id: NodeID) -> UInt32? { slots.find(id.rawValue) }

    /// The slot of `id`, created with `address` as its address if the id is new. A slot created for a status
    /// report (no address yet) takes the first real address interned for it.
    func intern(_ id: NodeID, address: SocketAddress) -> UInt32 {
        if let s = slots.find(id.rawValue) {
            if isShared && addresses[Int(s)].isUnspecified && !address.isUnspecified { addresses[Int(s)] = address }
            return s
        }
        let s: UInt32
        if let reused = freeSlots.popLast() {
            s = reused
            ids[Int(s)] = id
            addresses[Int(s)] = address
            keys[Int(s)] = []
        } else {
            s = UInt32(ids.count)
            ids.append(id)
            addresses.append(address)
            keys.append([])
        }
        slots.insert(id.rawValue, s)
        return s
    }

    /// A simulator's shared directory: registers an id its nodes may hear of (a member an adversary made up),
    /// with its address and key, between the windows in which nodes run, so that the threads running nodes
    /// only ever find ids here, never add them.
    public func register(_ id: NodeID, address: SocketAddress, key: [UInt8]) {
        precondition(isShared)
        setKey(key, slot: intern(id, address: address))
    }

    /// The member's public key, checked against its id by the caller (the same for every node that holds it).
    func setKey(_ key: [UInt8], slot: UInt32) {
        if keys[Int(slot)].isEmpty { keys[Int(slot)] = key }
    }

    /// A private directory's owner changed a member's address.
    func setAddress(_ address: SocketAddress, slot: UInt32) {
        precondition(!isShared)
        addresses[Int(slot)] = address
    }

    /// A private directory's owner forgot the member: its slot may be reused.
    func release(_ slot: UInt32) {
        precondition(!isShared)
        slots.remove(ids[Int(slot)].rawValue)
        freeSlots.append(slot)
    }
}

/// An open-addressing hash table from 64-bit ids to slots: a multiply-shift hash of the salted id and linear
/// probing, each key stored beside its slot (one cache line per probe). Member lookups are the core's most
/// frequent operation (every item of every packet), and the standard library's SipHash dictionary costs several
/// times more per lookup.
struct IDIndex {
    private struct Entry {
        var key: UInt64 = 0
        var value: UInt32 = IDIndex.empty
    }
    private static let empty = UInt32.max
    private static let deleted = UInt32.max - 1
    private let salt: UInt64
    private var entries: [Entry]
    private var shift: UInt64
    private var used = 0  // live entries and tombstones

    init(salt: UInt64) {
        self.salt = salt
        entries = [Entry](repeating: Entry(), count: 16)
        shift = 64 - 4
    }

    private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: ((key ^ salt) &* 0x9e37_79b9_7f4a_7c15) >> shift)
    }

    func find(_ key: UInt64) -> UInt32? {
        let mask = entries.count - 1
        var i = home(key)
        while true {
            let e = entries[i]
            if e.value == IDIndex.empty { return nil }
            if e.value != IDIndex.deleted && e.key == key { return e.value }
            i = (i + 1) & mask
        }
    }

    /// Adds `key`, which must not be present.
    mutating func insert(_ key: UInt64, _ value: UInt32) {
        if (used + 1) * 2 > entries.count { grow() }
        let mask = entries.count - 1
        var i = home(key)
        while entries[i].value != IDIndex.empty && entries[i].value != IDIndex.deleted { i = (i + 1) & mask }
        if entries[i].value == IDIndex.empty { used += 1 }
        entries[i] = Entry(key: key, value: value)
    }

    mutating func remove(_ key: UInt64) {
        let mask = entries.count - 1
        var i = home(key)
        while entries[i].value != IDIndex.empty {
            if entries[i].value != IDIndex.deleted && entries[i].key == key {
                entries[i].value = IDIndex.deleted
                return
            }
            i = (i + 1) & mask
        }
    }

    /// Doubles the table (or rebuilds it at the same size when tombstones filled it), to a load of at most a
    /// third: short probe runs, in a table small enough to stay in cache (512 KiB for a simulator's 10,000 ids).
    private mutating func grow() {
        let old = entries
        var live = 0
        for e in old where e.value != IDIndex.empty && e.value != IDIndex.deleted { live += 1 }
        var size = old.count
        while (live + 1) * 3 > size { size *= 2 }
        entries = [Entry](repeating: Entry(), count: size)
        shift = 64 - UInt64(size.trailingZeroBitCount)
        used = 0
        for e in old where e.value != IDIndex.empty && e.value != IDIndex.deleted { insert(e.key, e.value) }
    }
}

/// A node's member table: one 32-byte row per directory slot, read and written as `Member` values.
struct MemberTable {
    private struct Row {
        static let unknown: UInt8 = 0xff
        var incarnation: UInt64 = 0
        var stateChangedAt: UInt64 = 0
        var lastHeard: UInt64 = 0
        var state: UInt8 = Row.unknown
        /// True once the member has answered a probe from this node (see `Membership.ring`); kept for as long
        /// as the row is.
        var answered = false
        /// Index in the node's list of present members; -1 when not present.
        var presentPosition: Int32 = -1
    }

    let directory: MemberDirectory
    private var rows: [Row] = []
    /// Each member's signature of its row's statement (`Statement.member` at the row's incarnation and address,
    /// "left" for a member that left), by slot. Not kept under the simulated scheme, whose signatures follow from
    /// key and statement (`proof(_:)` computes them): a simulator's 10,000 nodes would otherwise hold 6 GB of
    /// them.
    private var signatures: [[UInt8]] = []
    let scheme: SignatureScheme
    /// Addresses this node believes that differ from the shared directory's (a member that moved).
    private var movedAddresses: [UInt32: SocketAddress] = [:]
    /// Members known (rows in use).
    private(set) var count = 0
    /// Known members by state (`MemberState.rawValue`), kept as rows change: a scan for failed members then
    /// costs nothing in a fleet that has none.
    private var stateCounts = [Int](repeating: 0, count: MemberState.allCases.count)
    /// The slots of the members that departed (failed or left) last, a ring of at most `recentCapacity` written
    /// at `recentNext`: a pull's reply sends them first, since what changed last is what the puller most likely
    /// lacks (a wave of failures is a few thousand records in a table of many thousands). Arrivals are not kept:
    /// a reply would pass over them, after reading each one's row at random.
    private var recent: [UInt32] = []
    private var recentNext = 0
    static let recentCapacity = 2048
    /// The fleet's update statuses: the first `sparseStatusesMax` in a short list of (slot, row) (a node that
    /// holds only its own would otherwise allocate rows up to its slot, 480 KiB in a 10,000-node simulator), then
    /// all of them by slot like the rows: a simulated node in a rollout holds one per fleet member, and a
    /// dictionary of those would be most of its memory.
    private var sparseStatuses: [(slot: UInt32, row: StatusRow)] = []
    /// Empty until the statuses outgrow `sparseStatuses`.
    private var statusRows: [StatusRow] = []
    static let sparseStatusesMax = 64
    /// Statuses held.
    private(set) var statusCount = 0

    private struct StatusRow {
        static let none: UInt8 = 0xff
        var productTag: UInt64 = 0
        var sequence: UInt64 = 0
        var installedVersion: UInt64 = 0
        var targetVersion: UInt64 = 0
        var chunksHave: UInt16 = 0
        var chunksTotal: UInt16 = 0
        var state: UInt8 = StatusRow.none
    }

    init(directory: MemberDirectory, scheme: SignatureScheme) {
        self.directory = directory
        self.scheme = scheme
    }

    /// The member's own word for its row as it stands: its key and its signature of the row's statement; nil
    /// for an unknown member or one whose key is not known.
    func proof(_ id: NodeID) -> MemberProof? {
        guard let s = knownSlot(id), !directory.keys[s].isEmpty else { return nil }
        let key = directory.keys[s]
        if scheme == .simulated {
            let m = member(at: s)
            let statement = Statement.member(
                id: m.id, incarnation: m.incarnation, address: m.address, left: m.state == .left)
            return MemberProof(key: key, signature: SignatureScheme.simulatedSignature(of: statement, by: key))
        }
        guard s < signatures.count, !signatures[s].isEmpty else { return nil }
        return MemberProof(key: key, signature: signatures[s])
    }

    /// The member's key, if known.
    func key(_ id: NodeID) -> [UInt8]? {
        guard let s = directory.slot(of: id).map(Int.init), !directory.keys[s].isEmpty else { return nil }
        return directory.keys[s]
    }

    /// Keeps a checked proof for the member's row (which must already hold the statement's incarnation, state
    /// and address).
    mutating func setProof(_ id: NodeID, _ proof: MemberProof) {
        guard let s = knownSlot(id) else { return }
        directory.setKey(proof.key, slot: UInt32(s))
        guard scheme != .simulated else { return }
        while signatures.count <= s { signatures.append([]) }
        signatures[s] = proof.signature
    }

    private func knownSlot(_ id: NodeID) -> Int? {
        guard let s = directory.slot(of: id), Int(s) < rows.count, rows[Int(s)].state != Row.unknown else {
            return nil
        }
        return Int(s)
    }

    func member(at s: Int) -> Member {
        let row = rows[s]
        return Member(
            id: directory.ids[s],
            address: movedAddresses.isEmpty
                ? directory.addresses[s] : movedAddresses[UInt32(s)] ?? directory.addresses[s],
            state: MemberState(rawValue: row.state) ?? .failed, incarnation: row.incarnation,
            stateChangedAt: row.stateChangedAt, lastHeard: row.lastHeard)
    }

    subscript(id: NodeID) -> Member? {
        get { knownSlot(id).map { member(at: $0) } }
        set {
            guard let m = newValue else {
                remove(id)
                return
            }
            precondition(m.id == id)
            store(m)
        }
    }

    /// Adds a member not known before, at `presentPosition` in the node's list of present members: one id
    /// lookup, where the subscript and `setPresentPosition` take two (a join adds every member to every node).
    mutating func add(_ m: Member, presentPosition: Int) {
        let s = store(m)
        rows[s].presentPosition = Int32(presentPosition)
    }

    /// Writes `m`'s row, keeping its present position; returns its slot.
    @discardableResult
    private mutating func store(_ m: Member) -> Int {
        let s = Int(directory.intern(m.id, address: m.address))
        if s >= rows.count {
            // In a simulator's shared directory the fleet is known: the table's size is reserved once rather
            // than grown by doubling, each step a copy into freshly faulted memory.
            if directory.isShared && rows.capacity <= s { rows.reserveCapacity(max(s + 1, directory.slotCount)) }
            rows.append(contentsOf: repeatElement(Row(), count: s + 1 - rows.count))
        }
        if rows[s].state == Row.unknown { count += 1 }
        if !m.state.isPresent && (rows[s].state != m.state.rawValue || rows[s].incarnation != m.incarnation) {
            noteDeparture(UInt32(s))
        }
        if rows[s].state != m.state.rawValue {
            if rows[s].state != Row.unknown { stateCounts[Int(rows[s].state)] -= 1 }
            stateCounts[Int(m.state.rawValue)] += 1
        }
        rows[s] = Row(
            incarnation: m.incarnation, stateChangedAt: m.stateChangedAt, lastHeard: m.lastHeard,
            state: m.state.rawValue, answered: rows[s].answered, presentPosition: rows[s].presentPosition)
        if directory.isShared {
            if m.address == directory.addresses[s] {
                if !movedAddresses.isEmpty { movedAddresses[UInt32(s)] = nil }
            } else {
                movedAddresses[UInt32(s)] = m.address
            }
        } else if m.address != directory.addresses[s] {
            directory.setAddress(m.address, slot: UInt32(s))
        }
        return s
    }

    private mutating func noteDeparture(_ slot: UInt32) {
        if recent.count < MemberTable.recentCapacity {
            recent.append(slot)
        } else {
            recent[recentNext] = slot
        }
        recentNext = (recentNext + 1) % MemberTable.recentCapacity
    }

    /// The slots of the members that departed last, newest first; a slot that departed more than once appears
    /// more than once, and one since returned or forgotten may appear (`presentIncarnation(at:)` and
    /// `isKnown(slot:)` tell).
    var recentDepartures: [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(recent.count)
        var i = recentNext
        for _ in 0..<recent.count {
            i = (i + recent.count - 1) % recent.count
            out.append(recent[i])
        }
        return out
    }

    func isKnown(slot s: Int) -> Bool { s < rows.count && rows[s].state != Row.unknown }

    /// The id of the member in slot `s`.
    func id(at s: Int) -> NodeID { directory.ids[s] }

    /// True if the member in slot `s` is suspect.
    func isSuspect(at s: Int) -> Bool { rows[s].state == MemberState.suspect.rawValue }

    /// The incarnation of the member in slot `s` if it is present (alive or suspect), read from its row alone.
    func presentIncarnation(at s: Int) -> UInt64? {
        let row = rows[s]
        return row.state == MemberState.alive.rawValue || row.state == MemberState.suspect.rawValue
            ? row.incarnation : nil
    }

    /// One past the highest slot a row may use (a bound for sets of slots).
    var slotLimit: Int { rows.count }

    private mutating func remove(_ id: NodeID) {
        guard let s = knownSlot(id) else { return }
        stateCounts[Int(rows[s].state)] -= 1
        rows[s] = Row()
        if s < signatures.count { signatures[s] = [] }
        movedAddresses[UInt32(s)] = nil
        count -= 1
        if !directory.isShared && !hasStatus(at: s) { directory.release(UInt32(s)) }
    }

    private func statusRow(at s: Int) -> StatusRow? {
        if statusRows.isEmpty { return sparseStatuses.first { $0.slot == UInt32(s) }?.row }
        return s < statusRows.count && statusRows[s].state != StatusRow.none ? statusRows[s] : nil
    }

    private func hasStatus(at s: Int) -> Bool { statusRow(at: s) != nil }

    /// Stores (or with nil clears) slot `s`'s status row, moving every row to the array by slot once the short
    /// list is full.
    private mutating func setStatusRow(_ row: StatusRow?, at s: Int) {
        if statusRows.isEmpty {
            let at = sparseStatuses.firstIndex { $0.slot == UInt32(s) }
            if let at, let row {
                sparseStatuses[at].row = row
                return
            }
            if let at {
                sparseStatuses.remove(at: at)
                return
            }
            guard let row else { return }
            if sparseStatuses.count < MemberTable.sparseStatusesMax {
                sparseStatuses.append((UInt32(s), row))
                return
            }
            var highest = s
            for e in sparseStatuses { highest = max(highest, Int(e.slot)) }
            statusRows = [StatusRow](repeating: StatusRow(), count: highest + 1)
            for e in sparseStatuses { statusRows[Int(e.slot)] = e.row }
            sparseStatuses = []
        }
        if s >= statusRows.count {
            statusRows.append(contentsOf: repeatElement(StatusRow(), count: s + 1 - statusRows.count))
        }
        statusRows[s] = row ?? StatusRow()
    }

    private func status(at s: Int) -> NodeStatus {
        let r = statusRow(at: s) ?? StatusRow()
        return NodeStatus(
            node: directory.ids[s], productTag: r.productTag, sequence: r.sequence,
            installedVersion: r.installedVersion, targetVersion: r.targetVersion,
            state: UpdateState(rawValue: r.state) ?? .failed, chunksHave: r.chunksHave, chunksTotal: r.chunksTotal)
    }

    /// The update status last heard from `id`, member or not.
    func status(_ id: NodeID) -> NodeStatus? {
        guard let s = directory.slot(of: id), hasStatus(at: Int(s)) else { return nil }
        return status(at: Int(s))
    }

    /// Stores a status. The node need not be a known member (statuses and member news travel separately); its
    /// slot is then kept for the status alone.
    mutating func setStatus(_ st: NodeStatus) {
        let s = Int(directory.intern(st.node, address: SocketAddress(ipv4: 0, 0, 0, 0, port: 0)))
        if !hasStatus(at: s) { statusCount += 1 }
        setStatusRow(
            StatusRow(
                productTag: st.productTag, sequence: st.sequence, installedVersion: st.installedVersion,
                targetVersion: st.targetVersion, chunksHave: st.chunksHave, chunksTotal: st.chunksTotal,
                state: st.state.rawValue), at: s)
    }

    mutating func removeStatus(_ id: NodeID) {
        guard let s = directory.slot(of: id).map(Int.init), hasStatus(at: s) else { return }
        setStatusRow(nil, at: s)
        statusCount -= 1
        let isMember = s < rows.count && rows[s].state != Row.unknown
        if !directory.isShared && !isMember { directory.release(UInt32(s)) }
    }

    /// Every status held, in slot order.
    var statuses: [NodeStatus] {
        var out: [NodeStatus] = []
        out.reserveCapacity(statusCount)
        if statusRows.isEmpty {
            for s in sparseStatuses.map({ $0.slot }).sorted() { out.append(status(at: Int(s))) }
        } else {
            for s in 0..<statusRows.count where statusRows[s].state != StatusRow.none { out.append(status(at: s)) }
        }
        return out
    }

    /// A known member's state and incarnation, without building a `Member`: most records a node hears change
    /// nothing, and this is all it takes to tell.
    func stateAndIncarnation(_ id: NodeID) -> (state: MemberState, incarnation: UInt64)? {
        guard let s = knownSlot(id) else { return nil }
        return (MemberState(rawValue: rows[s].state) ?? .failed, rows[s].incarnation)
    }

    mutating func setLastHeard(_ id: NodeID, _ now: UInt64) {
        if let s = knownSlot(id) { rows[s].lastHeard = now }
    }

    /// Whether the member has answered a probe from this node.
    func hasAnswered(_ id: NodeID) -> Bool { knownSlot(id).map { rows[$0].answered } ?? false }

    /// Notes that the member answered a probe; true if it had not before.
    mutating func setAnswered(_ id: NodeID) -> Bool {
        guard let s = knownSlot(id), !rows[s].answered else { return false }
        rows[s].answered = true
        return true
    }

    /// The member's index in the node's present list, if it is there.
    func presentPosition(_ id: NodeID) -> Int? {
        guard let s = knownSlot(id), rows[s].presentPosition >= 0 else { return nil }
        return Int(rows[s].presentPosition)
    }

    mutating func setPresentPosition(_ id: NodeID, _ position: Int?) {
        guard let s = knownSlot(id) else { return }
        rows[s].presentPosition = Int32(position ?? -1)
    }

    /// Every known member, in slot order.
    var values: [Member] {
        var out: [Member] = []
        out.reserveCapacity(count)
        for s in 0..<rows.count where rows[s].state != Row.unknown { out.append(member(at: s)) }
        return out
    }

    /// How many known members are in `state`.
    func count(_ state: MemberState) -> Int { stateCounts[Int(state.rawValue)] }

    /// The ids of the known members in `state` whose state changed at or before `changedBy`, in slot order. Reads
    /// the rows alone, and nothing at all when no member is in `state`: the periodic scans for failed and left
    /// members run on every node of a quiet fleet.
    func ids(in state: MemberState, changedBy: UInt64 = .max) -> [NodeID] {
        var out: [NodeID] = []
        guard count(state) > 0 else { return out }
        for s in 0..<rows.count where rows[s].state == state.rawValue && rows[s].stateChangedAt <= changedBy {
            out.append(directory.ids[s])
        }
        return out
    }
}
