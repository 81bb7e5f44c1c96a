import CNetSNMP
import EquicastCore

/// The module's notifications, sent through the master (which forwards them to its trap sinks).
public enum SNMPNotification: Sendable {
    case memberJoined(NodeID, SocketAddress)
    case memberFailed(NodeID, SocketAddress)
    /// The new running version and its release id.
    case firmwareInstalled(version: UInt64, release: [UInt8])
    case updateFailed(version: UInt64, release: [UInt8], reason: String)
    case rolledBack(version: UInt64, release: [UInt8], reason: String)
    /// A peer served a bad chunk (its id and address), or a manifest failed verification (this node's own id and
    /// the sender's address).
    case integrityViolation(peer: NodeID, address: SocketAddress, release: [UInt8], reason: String)
}

/// A token bucket for notifications: `burst` may go at once, then `perSecond`. A node that joins a fleet of
/// thousands learns of every member within seconds, and a crash of a fifth of a fleet fails as many at once: one
/// notification each would flood the manager with what the tables already show.
public struct NotificationBudget: Sendable {
    public let burst: UInt64
    public let perSecond: UInt64
    /// In thousandths of a notification.
    private var tokens: UInt64
    private var refilledAt: UInt64?
    /// Refused since the last `takeDropped()`.
    public private(set) var dropped: UInt64 = 0

    public init(burst: UInt64 = 32, perSecond: UInt64 = 4) {
        self.burst = burst
        self.perSecond = perSecond
        tokens = burst * 1000
    }

    /// Whether one more may go at `now` (monotonic ms); counts it either way.
    public mutating func take(now: UInt64) -> Bool {
        if let t = refilledAt, now > t { tokens = min(burst * 1000, tokens + (now - t) * perSecond) }
        refilledAt = max(refilledAt ?? now, now)
        guard tokens >= 1000 else {
            dropped += 1
            return false
        }
        tokens -= 1000
        return true
    }

    public mutating func takeDropped() -> UInt64 {
        defer { dropped = 0 }
        return dropped
    }
}

extension SubAgent {
    /// Sends `notification` if the master is connected and the budget allows; returns whether it was handed to
    /// net-snmp. What the budget refuses is logged, as a count, at most once a minute. `now`: monotonic ms.
    @discardableResult
    public func send(_ notification: SNMPNotification, now: UInt64) -> Bool {
        guard connected else { return false }
        guard notificationBudget.take(now: now) else {
            if now >= dropReportedAt + 60_000 {
                dropReportedAt = now
                log(
                    .warning,
                    "SNMP: \(notificationBudget.takeDropped()) notification(s) not sent: more than "
                        + "\(notificationBudget.perSecond) a second (the tables show the current state)")
            }
            return false
        }
        let notify: (oid) -> [oid] = { MIBTree.objects + [7, $0, 0] }
        var values: [([oid], SNMPValue)] = []
        let kind: oid
        switch notification {
        case .memberJoined(let id, let address), .memberFailed(let id, let address):
            if case .memberJoined = notification { kind = 1 } else { kind = 2 }
            values = [
                (notify(1), SNMPValue.nodeID(id)), (notify(2), SNMPValue.addressType(address)),
                (notify(3), SNMPValue.address(address)),
            ]
        case .firmwareInstalled(let version, let release):
            kind = 3
            values = [(MIBTree.object(4, 1) + [0], SNMPValue.version(version)), (notify(4), .octets(release))]
        case .updateFailed(let version, let release, let reason), .rolledBack(let version, let release, let reason):
            if case .updateFailed = notification { kind = 4 } else { kind = 5 }
            values = [
                (notify(5), SNMPValue.version(version)), (notify(4), .octets(release)),
                (notify(6), SNMPValue.text(reason, max: 255)),
            ]
        case .integrityViolation(let peer, let address, let release, let reason):
            kind = 6
            values = [
                (notify(1), SNMPValue.nodeID(peer)), (notify(2), SNMPValue.addressType(address)),
                (notify(3), SNMPValue.address(address)), (notify(4), .octets(release)),
                (notify(6), SNMPValue.text(reason, max: 255)),
            ]
        }
        var list: UnsafeMutablePointer<netsnmp_variable_list>?
        let trapOID = MIBTree.notifications + [kind]
        let added = MIBTree.snmpTrapOID.withUnsafeBufferPointer { name in
            trapOID.withUnsafeBytes { value in
                snmp_varlist_add_variable(
                    &list, name.baseAddress, name.count, SNMPValue.typeObjectID,
                    value.baseAddress?.assumingMemoryBound(to: UInt8.self), value.count)
            }
        }
        guard added != nil else { return false }
        for (name, value) in values {
            let vb = name.withUnsafeBufferPointer {
                snmp_varlist_add_variable(&list, $0.baseAddress, $0.count, SNMPValue.typeInteger, nil, 0)
            }
            guard let vb, value.store(in: vb) else {
                snmp_free_varbind(list)
                return false
            }
        }
        send_v2trap(list)
        snmp_free_varbind(list)
        return true
    }
}
