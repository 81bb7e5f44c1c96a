import CSodium

/// BLAKE2b-256 over data that arrives in pieces (an image assembled chunk by chunk), in constant memory.
public final class BLAKE2bStream {
    private let state: UnsafeMutableRawPointer

    public init() {
        Sodium.ensureInitialized()
        // crypto_generichash_state must be 64-byte aligned.
        state = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
        _ = crypto_generichash_init(
            OpaquePointer(state), nil, 0, BLAKE2b.digestByteCount)
    }

    deinit { state.deallocate() }

    public func update(_ data: UnsafeRawBufferPointer) {
        _ = crypto_generichash_update(
            OpaquePointer(state),
            data.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(data.count))
    }

    /// The digest of everything passed to `update`; the stream is finished afterwards.
    public func finish() -> Digest256 {
        var out = [UInt8](repeating: 0, count: BLAKE2b.digestByteCount)
        out.withUnsafeMutableBufferPointer { o in
            _ = crypto_generichash_final(
                OpaquePointer(state), o.baseAddress!, BLAKE2b.digestByteCount)
        }
        return Digest256(bytes: out)!
    }
}

/// BLAKE2b (RFC 7693) through libsodium's `crypto_generichash`: content addresses of chunks and images
/// (BLAKE2b-256), the member-list digest, and the keyed MAC of unencrypted frames.
public enum BLAKE2b {
    /// Digest length used for content addresses (256 bits).
    public static let digestByteCount = 32
    /// Tag length of the keyed MAC on unencrypted frames (128 bits, the same strength as the AEAD tag).
    public static let macByteCount = 16
    /// Largest key libsodium's BLAKE2b accepts.
    public static let keyByteCountMax = 64

    /// One-shot BLAKE2b of `data` with an output of `outputByteCount` bytes (16...64).
    public static func hash(_ data: UnsafeRawBufferPointer, outputByteCount: Int = digestByteCount) -> [UInt8] {
        precondition(outputByteCount >= 16 && outputByteCount <= 64, "BLAKE2b output must be 16...64 bytes")
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: outputByteCount)
        out.withUnsafeMutableBufferPointer { o in
            _ = crypto_generichash(
                o.baseAddress!, outputByteCount, data.baseAddress?.assumingMemoryBound(to: UInt8.self),
                UInt64(data.count), nil, 0)
        }
        return out
    }

    /// One-shot BLAKE2b-256 of an array.
    public static func hash(_ data: [UInt8], outputByteCount: Int = digestByteCount) -> [UInt8] {
        data.withUnsafeBytes { hash($0, outputByteCount: outputByteCount) }
    }

    /// Keyed BLAKE2b: a MAC of `data` under `key` (BLAKE2b's own keyed mode, which needs no HMAC wrapper).
    public static func mac(
        _ data: UnsafeRawBufferPointer, key: SymmetricKey, outputByteCount: Int = macByteCount
    ) -> [UInt8] {
        precondition(outputByteCount >= 16 && outputByteCount <= 64, "BLAKE2b MAC must be 16...64 bytes")
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: outputByteCount)
        out.withUnsafeMutableBufferPointer { o in
            key.withUnsafeKey { k in
                _ = crypto_generichash(
                    o.baseAddress!, outputByteCount, data.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    UInt64(data.count), k, SymmetricKey.byteCount)
            }
        }
        return out
    }

    /// Keyed BLAKE2b of an array.
    public static func mac(_ data: [UInt8], key: SymmetricKey, outputByteCount: Int = macByteCount) -> [UInt8] {
        data.withUnsafeBytes { mac($0, key: key, outputByteCount: outputByteCount) }
    }
}

/// Streaming BLAKE2b for inputs too large to hold in memory (firmware images, assembled files). The libsodium
/// state needs 64-byte alignment, so it lives in memory this object allocates rather than in a Swift struct.
public final class BLAKE2bHasher {
    private let state: UnsafeMutableRawPointer
    private let outputByteCount: Int
    private var finished = false

    /// Starts a hash with `outputByteCount` bytes of output, keyed when `key` is given.
    public init(outputByteCount: Int = BLAKE2b.digestByteCount, key: SymmetricKey? = nil) {
        precondition(outputByteCount >= 16 && outputByteCount <= 64, "BLAKE2b output must be 16...64 bytes")
        Sodium.ensureInitialized()
        self.outputByteCount = outputByteCount
        state = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
        let typed = OpaquePointer(state)
        if let key {
            key.withUnsafeKey { k in _ = crypto_generichash_init(typed, k, SymmetricKey.byteCount, outputByteCount) }
        } else {
            _ = crypto_generichash_init(typed, nil, 0, outputByteCount)
        }
    }

    deinit {
        sodium_memzero(state, crypto_generichash_statebytes())
        state.deallocate()
    }

    /// Adds bytes to the hash.
    public func update(_ data: UnsafeRawBufferPointer) {
        precondition(!finished, "BLAKE2bHasher used after finalize()")
        guard !data.isEmpty else { return }
        _ = crypto_generichash_update(
            OpaquePointer(state),
            data.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(data.count))
    }

    /// Adds an array's bytes to the hash.
    public func update(_ data: [UInt8]) {
        data.withUnsafeBytes { update($0) }
    }

    /// Ends the hash and returns the digest; the hasher cannot be used afterwards.
    public func finalize() -> [UInt8] {
        precondition(!finished, "BLAKE2bHasher finalized twice")
        finished = true
        var out = [UInt8](repeating: 0, count: outputByteCount)
        out.withUnsafeMutableBufferPointer { o in
            _ = crypto_generichash_final(
                OpaquePointer(state), o.baseAddress!, outputByteCount)
        }
        return out
    }
}

/// A BLAKE2b-256 digest held inline (four words, no heap allocation): the content address of chunks, manifests
/// and images, and a cheap dictionary key.
public struct Digest256: Hashable, Comparable, Sendable {
    public var words: (UInt64, UInt64, UInt64, UInt64)

    /// The digest of `data`, computed without allocating.
    public init(hashing data: UnsafeRawBufferPointer) {
        Sodium.ensureInitialized()
        words = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { out in
            _ = crypto_generichash(
                out.baseAddress!.assumingMemoryBound(to: UInt8.self), BLAKE2b.digestByteCount,
                data.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(data.count), nil, 0)
        }
    }

    public init(hashing data: [UInt8]) {
        self = data.withUnsafeBytes { Digest256(hashing: $0) }
    }

    /// From 32 digest bytes (as read from a manifest); nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == BLAKE2b.digestByteCount else { return nil }
        words = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { out in
            for i in 0..<BLAKE2b.digestByteCount { out[i] = bytes[i] }
        }
    }

    /// The 32 digest bytes in BLAKE2b's output order.
    public var bytes: [UInt8] {
        var w = words
        return withUnsafeBytes(of: &w) { Array($0) }
    }

    public static func == (a: Digest256, b: Digest256) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    /// Byte-wise order of the digests (used to sort chunk lists deterministically).
    public static func < (a: Digest256, b: Digest256) -> Bool {
        a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}
