import EquicastCore

/// Whether this node may install releases (EQUICAST-LITE-MIB::equicastUpdateAdminStatus). `deferInstalls` holds
/// a verified release staged; it can never start an install by itself.
public enum UpdateAdminStatus: Int32, Sendable {
    case allow = 1
    case deferInstalls = 2

    public var name: String { self == .allow ? "allow" : "defer" }
}

/// One member as this node sees it (a row of equicastMemberTable).
public struct SNMPMemberRow: Equatable, Sendable {
    public var id: NodeID
    public var address: SocketAddress
    public var state: MemberState
    public var incarnation: UInt64
    /// From the member's last status report; 0 and idle when none has arrived.
    public var firmwareVersion: UInt64
    public var updateState: UpdateState
    /// Hundredths of a second since the member was last heard directly; 0 for self and for never.
    public var lastHeardAge: UInt32

    public init(
        id: NodeID, address: SocketAddress, state: MemberState, incarnation: UInt64, firmwareVersion: UInt64,
        updateState: UpdateState, lastHeardAge: UInt32
    ) {
        self.id = id
        self.address = address
        self.state = state
        self.incarnation = incarnation
        self.firmwareVersion = firmwareVersion
        self.updateState = updateState
        self.lastHeardAge = lastHeardAge
    }
}

/// One node's last status report (a row of equicastFleetTable).
public struct SNMPFleetRow: Equatable, Sendable {
    public var id: NodeID
    public var firmwareVersion: UInt64
    public var targetVersion: UInt64
    public var updateState: UpdateState
    public var chunksVerified: UInt32
    public var chunksTotal: UInt32

    public init(
        id: NodeID, firmwareVersion: UInt64, targetVersion: UInt64, updateState: UpdateState, chunksVerified: UInt32,
        chunksTotal: UInt32
    ) {
        self.id = id
        self.firmwareVersion = firmwareVersion
        self.targetVersion = targetVersion
        self.updateState = updateState
        self.chunksVerified = chunksVerified
        self.chunksTotal = chunksTotal
    }
}

/// Per firmware version, the fleet's nodes that run it (`running`) and, by update state, those heading to it
/// (a row of equicastReleaseTable).
public struct SNMPReleaseRow: Equatable, Sendable {
    public var version: UInt32
    public var running: UInt32 = 0
    /// Indexed by `UpdateState.rawValue`; idle is never counted here.
    public var byState = [UInt32](repeating: 0, count: UpdateState.allCases.count)

    /// Counts each fleet row under its target version while it has one, else under the version it runs.
    public static func tally(_ fleet: [SNMPFleetRow]) -> [SNMPReleaseRow] {
        var rows: [SNMPReleaseRow] = []
        func row(_ version: UInt64) -> Int {
            let v = SNMPValue.clampedVersion(version)
            if let i = rows.firstIndex(where: { $0.version == v }) { return i }
            rows.append(SNMPReleaseRow(version: v))
            return rows.count - 1
        }
        for f in fleet {
            if f.firmwareVersion > 0 { rows[row(f.firmwareVersion)].running += 1 }
            if f.targetVersion > 0 && f.updateState != .idle {
                rows[row(f.targetVersion)].byState[Int(f.updateState.rawValue)] += 1
            }
        }
        var order = rows.map { UInt64($0.version) }
        order.sort()
        return order.map { v in rows.first { UInt64($0.version) == v }! }
    }
}

/// What the subagent serves: copied from the node by the daemon, then only read by the handlers. The daemon
/// replaces it at most once a second, so a walk sees one consistent state per refresh.
public struct SNMPSnapshot: Sendable {
    public var nodeID = NodeID(rawValue: 0)
    public var nodeName = ""
    public var agentVersion = ""
    /// Hundredths of a second since equicastd started.
    public var uptime: UInt32 = 0

    public var ringSize: UInt32 = 0
    public var gossipInterval: UInt32 = 0
    public var heartbeatTimeout: UInt32 = 0
    public var encryptionEnabled = true

    public var membersAlive: UInt32 = 0
    public var membersSuspect: UInt32 = 0
    public var membersFailed: UInt32 = 0
    public var membersLeft: UInt32 = 0

    public var firmwareVersion: UInt64 = 0
    public var targetVersion: UInt64 = 0
    /// 32 bytes, or empty when no release is held.
    public var releaseID: [UInt8] = []
    public var updateState = UpdateState.idle
    public var chunksVerified: UInt32 = 0
    public var chunksTotal: UInt32 = 0
    public var bytesDownloaded: UInt64 = 0
    public var bytesServed: UInt64 = 0

    public var authenticationFailures: UInt64 = 0
    public var replaysRejected: UInt64 = 0
    public var decodeErrors: UInt64 = 0
    public var badChunks: UInt64 = 0
    public var signatureFailures: UInt64 = 0

    /// In id order.
    public var members: [SNMPMemberRow] = []
    /// In id order.
    public var fleet: [SNMPFleetRow] = []

    public init() {}
}
