import CSodium

/// libsodium's process-wide initialisation. `sodium_init` picks the fastest implementation of each primitive
/// for this CPU and seeds the random source; every public entry point of this module calls `ensureInitialized`
/// first, so callers never have to remember it.
public enum Sodium {
    nonisolated(unsafe) private static var initialized = false

    /// Initialises libsodium once. Safe to call often: after the first success it is a single load.
    @inline(__always)
    public static func ensureInitialized() {
        if !initialized {
            // 0 = initialised now, 1 = already initialised; -1 = no random source, which we cannot work without.
            if sodium_init() < 0 { fatalError("libsodium failed to initialise: no usable random source") }
            initialized = true
        }
    }

    /// libsodium's version string, for the self-test report.
    public static var version: String {
        guard let text = sodium_version_string() else { return "unknown" }
        return String(cString: text)
    }
}

/// Fills `count` bytes from the operating system's CSPRNG (libsodium's `randombytes_buf`). Only drivers call this:
/// the protocol core takes its randomness as a parameter.
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    Sodium.ensureInitialized()
    var out = [UInt8](repeating: 0, count: count)
    if count > 0 {
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
    }
    return out
}

/// Compares two byte strings in time that depends only on their length (libsodium's `sodium_memcmp`).
/// Different lengths compare unequal; lengths are not secret.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 }
    }
}

/// Constant-time comparison over raw buffers of equal length.
public func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
}

/// Runs `body` with a pointer that is never nil, even for an empty array: libsodium marks many pointer
/// parameters non-null and must not be handed a nil base address.
@inline(__always)
func withNonNullBytes<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    if bytes.isEmpty {
        var zero: UInt8 = 0
        return withUnsafePointer(to: &zero) { body($0, 0) }
    }
    return bytes.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
}

@inline(__always)
func withNonNullBytes<R>(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    if bytes.isEmpty {
        var zero: UInt8 = 0
        return withUnsafePointer(to: &zero) { body($0, 0) }
    }
    return body(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
}
