import CNetSNMP
import EquicastCore

/// A value of one of the MIB's syntaxes, written into a net-snmp varbind.
enum SNMPValue {
    case integer(Int32)
    case gauge(UInt32)
    case timeTicks(UInt32)
    case counter64(UInt64)
    case octets([UInt8])

    // BER types (net-snmp's ASN_* macros are not visible to Swift).
    static let typeInteger: UInt8 = 0x02
    static let typeOctetString: UInt8 = 0x04
    static let typeObjectID: UInt8 = 0x06
    static let typeGauge: UInt8 = 0x42
    static let typeTimeTicks: UInt8 = 0x43
    static let typeCounter64: UInt8 = 0x46
    /// An octet-string index encoded without a length sub-identifier (net-snmp's ASN_PRIV_IMPLIED_OCTET_STR,
    /// for IMPLIED strings): the SMI's encoding of a fixed-length string, as EquicastNodeIdentifier (SIZE (8)) is.
    static let typeFixedOctetString: UInt8 = 0xc4

    /// Writes the value into `vb`; false when net-snmp refused (out of memory).
    @discardableResult
    func store(in vb: UnsafeMutablePointer<netsnmp_variable_list>) -> Bool {
        switch self {
        case .integer(let v):
            var x = Int(v)  // net-snmp holds INTEGERs as long
            return snmp_set_var_typed_value(vb, SNMPValue.typeInteger, &x, MemoryLayout<Int>.size) == 0
        case .gauge(let v):
            var x = UInt(v)
            return snmp_set_var_typed_value(vb, SNMPValue.typeGauge, &x, MemoryLayout<UInt>.size) == 0
        case .timeTicks(let v):
            var x = UInt(v)
            return snmp_set_var_typed_value(vb, SNMPValue.typeTimeTicks, &x, MemoryLayout<UInt>.size) == 0
        case .counter64(let v):
            var c = CNetSNMP.counter64(high: UInt(v >> 32), low: UInt(v & 0xffff_ffff))
            return snmp_set_var_typed_value(vb, SNMPValue.typeCounter64, &c, MemoryLayout<CNetSNMP.counter64>.size) == 0
        case .octets(let bytes):
            if bytes.isEmpty { return snmp_set_var_typed_value(vb, SNMPValue.typeOctetString, nil, 0) == 0 }
            return bytes.withUnsafeBufferPointer {
                snmp_set_var_typed_value(vb, SNMPValue.typeOctetString, $0.baseAddress, $0.count) == 0
            }
        }
    }

    /// MIB versions are Unsigned32; a manifest's 64-bit version above that reads as the largest.
    static func clampedVersion(_ v: UInt64) -> UInt32 { UInt32(clamping: v) }

    static func version(_ v: UInt64) -> SNMPValue { .gauge(clampedVersion(v)) }

    /// A node id as EquicastNodeIdentifier: 8 octets, most significant first.
    static func nodeIDBytes(_ id: NodeID) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: id.rawValue >> (56 - 8 * UInt64($0))) }
    }

    static func nodeID(_ id: NodeID) -> SNMPValue { .octets(nodeIDBytes(id)) }

    /// EquicastMemberStatus: alive(1) ... left(4).
    static func memberState(_ s: MemberState) -> SNMPValue { .integer(Int32(s.rawValue) + 1) }

    /// EquicastUpdatePhase: idle(1) ... rolledBack(10).
    static func updateState(_ s: UpdateState) -> SNMPValue { .integer(Int32(s.rawValue) + 1) }

    static func truth(_ b: Bool) -> SNMPValue { .integer(b ? 1 : 2) }

    /// InetAddressType: ipv4(1), ipv6(2); and the InetAddress octets.
    static func addressType(_ a: SocketAddress) -> SNMPValue { .integer(a.family == .ipv4 ? 1 : 2) }
    static func address(_ a: SocketAddress) -> SNMPValue { .octets(a.bytes) }

    static func text(_ s: String, max: Int) -> SNMPValue { .octets(Array(s.utf8.prefix(max))) }
}

/// Object identifiers of EQUICAST-LITE-MIB.
enum MIBTree {
    /// equicastLiteMIB: NET-SNMP-MIB::netSnmpExperimental.7411 (1.3.6.1.4.1.8072.9999.7411). Moving the module
    /// under a registered enterprise number changes this line and the MIB's MODULE-IDENTITY.
    static let root: [oid] = [1, 3, 6, 1, 4, 1, 8072, 9999, 7411]
    static let notifications = root + [0]
    static let objects = root + [1]

    static func object(_ group: oid, _ item: oid) -> [oid] { objects + [group, item] }

    /// SNMPv2-MIB::snmpTrapOID.0, the first varbind of every notification.
    static let snmpTrapOID: [oid] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0]
}
