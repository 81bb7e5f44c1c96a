import CEquicastShims
import EquicastCore

extension SocketAddress {
    /// Parses `host:port`, `[v6]:port`; the host must be a numeric address (no name lookups on a device).
    public static func parse(_ text: String) throws(PosixError) -> SocketAddress {
        let utf8 = Array(text.utf8)
        var host: [UInt8]
        var portText: [UInt8]
        if utf8.first == UInt8(ascii: "[") {
            guard let close = utf8.firstIndex(of: UInt8(ascii: "]")), close + 1 < utf8.count,
                utf8[close + 1] == UInt8(ascii: ":")
            else { throw .invalidAddress(text) }
            host = Array(utf8[1..<close])
            portText = Array(utf8[(close + 2)...])
        } else {
            guard let colon = utf8.lastIndex(of: UInt8(ascii: ":")) else { throw .invalidAddress(text) }
            host = Array(utf8[0..<colon])
            portText = Array(utf8[(colon + 1)...])
            if host.contains(UInt8(ascii: ":")) { throw .invalidAddress(text) }
        }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw .invalidAddress(text)
        }
        var port = 0
        for d in portText { port = port * 10 + Int(d - 0x30) }
        guard port <= 65535 else { throw .invalidAddress(text) }
        host.append(0)
        var ep = equicast_endpoint()
        let ok = host.withUnsafeBufferPointer { h in
            h.baseAddress!.withMemoryRebound(to: CChar.self, capacity: h.count) {
                equicast_parse_address($0, UInt16(port), &ep)
            }
        }
        guard ok == 1 else { throw .invalidAddress(text) }
        return SocketAddress(endpoint: ep)
    }

    init(endpoint ep: equicast_endpoint) {
        var b = ep.bytes
        let bytes = withUnsafeBytes(of: &b) { Array($0) }
        self.init(bytes: ep.is_v6 != 0 ? bytes : Array(bytes[0..<4]), port: ep.port)!
    }

    var endpoint: equicast_endpoint {
        var ep = equicast_endpoint()
        ep.is_v6 = family == .ipv6 ? 1 : 0
        ep.port = port
        let b = bytes
        withUnsafeMutableBytes(of: &ep.bytes) { raw in
            for i in 0..<b.count { raw[i] = b[i] }
        }
        return ep
    }
}
