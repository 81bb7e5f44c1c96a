/// An IPv4 or IPv6 address and port, as plain data the sans-IO core can store, hash and compare. Drivers convert
/// it to and from `sockaddr`; the core never does.
public struct SocketAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable {
        case ipv4 = 4
        case ipv6 = 6
    }

    public let family: Family
    /// Address bytes in network order; IPv4 uses the first four.
    public let high: UInt64
    public let low: UInt64
    public let port: UInt16

    /// From network-order address bytes: 4 for IPv4, 16 for IPv6. nil for any other length.
    public init?(bytes: [UInt8], port: UInt16) {
        switch bytes.count {
        case 4: family = .ipv4
        case 16: family = .ipv6
        default: return nil
        }
        var h: UInt64 = 0
        var l: UInt64 = 0
        for i in 0..<16 {
            let b = i < bytes.count ? UInt64(bytes[i]) : 0
            if i < 8 { h = h << 8 | b } else { l = l << 8 | b }
        }
        high = h
        low = l
        self.port = port
    }

    /// From the two big-endian halves of the address bytes (IPv4 in the top 32 bits of `high`), as decoders read
    /// them.
    init(family: Family, high: UInt64, low: UInt64, port: UInt16) {
        self.family = family
        self.high = high
        self.low = family == .ipv4 ? 0 : low
        self.port = port
    }

    /// An IPv4 address from four octets.
    public init(ipv4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) {
        self.init(bytes: [a, b, c, d], port: port)!
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for i in 0..<16 {
            let word = i < 8 ? high : low
            out.append(UInt8((word >> UInt64(56 - 8 * (i % 8))) & 0xff))
        }
        return family == .ipv4 ? Array(out[0..<4]) : out
    }

    /// The same address with another port.
    public func with(port: UInt16) -> SocketAddress {
        SocketAddress(bytes: bytes, port: port)!
    }

    /// 0.0.0.0 or ::, a wildcard to bind to, never an address to announce.
    public var isUnspecified: Bool { high == 0 && low == 0 }

    public static func < (a: SocketAddress, b: SocketAddress) -> Bool {
        if a.family != b.family { return a.family.rawValue < b.family.rawValue }
        if a.high != b.high { return a.high < b.high }
        if a.low != b.low { return a.low < b.low }
        return a.port < b.port
    }

    /// `1.2.3.4:5000` or `[2001:db8::1]:5000` (IPv6 shown as eight full groups; drivers print the short form).
    public var description: String {
        let b = bytes
        if family == .ipv4 {
            return "\(b[0]).\(b[1]).\(b[2]).\(b[3]):\(port)"
        }
        var s = "["
        for i in 0..<8 {
            if i > 0 { s += ":" }
            let group = UInt16(b[2 * i]) << 8 | UInt16(b[2 * i + 1])
            s += hexGroup(group)
        }
        return s + "]:\(port)"
    }

    private func hexGroup(_ g: UInt16) -> String { String(g, radix: 16) }
}
