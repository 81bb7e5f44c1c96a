import CNetSNMP

/// net-snmp's library as linked into this build. The AgentX subagent (EQUICAST-LITE-MIB) builds on it; until
/// then the self-test uses this to prove, on the target, that the SNMP-enabled build links and runs.
public enum NetSNMPLibrary {
    /// net-snmp's version string, e.g. "5.9.3".
    public static var version: String {
        guard let text = netsnmp_get_version() else { return "unknown" }
        return String(cString: text)
    }

    /// BER-encodes an INTEGER with net-snmp's encoder; nil when the encoder refuses.
    public static func berInteger(_ value: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 16)
        var room = buffer.count
        var v = value
        let end = buffer.withUnsafeMutableBufferPointer { b in
            asn_build_int(b.baseAddress!, &room, UInt8(ASN_INTEGER), &v, MemoryLayout<Int>.size)
        }
        guard end != nil else { return nil }
        return Array(buffer[0..<(buffer.count - room)])
    }
}
