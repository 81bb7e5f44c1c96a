import CEquicastShims

/// The process arguments, read through the C shim because Embedded Swift has no `CommandLine`.
public enum ProcessArguments {
    public static var all: [String] {
        var out: [String] = []
        let count = Int(equicast_argc())
        for i in 0..<count {
            if let p = equicast_argv(Int32(i)) { out.append(String(cString: p)) }
        }
        return out
    }
}

/// Writes a line to standard error (journald reads it with the unit's name attached).
public func printError(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(0x0a)
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(2, raw.baseAddress! + offset, raw.count - offset)
            if n <= 0 { break }
            offset += n
        }
    }
}

/// Bytes from hex text; nil when the text is not an even number of hex digits.
public func bytesFromHex(_ text: String) -> [UInt8]? {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(utf8.count / 2)
    var i = 0
    while i < utf8.count {
        guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
