import CSodium

/// A 32-byte secret key (fleet key, or a sub-key derived from it). The bytes live in memory this object owns and
/// are wiped with `sodium_memzero` when the last reference goes away, so a key does not linger in freed memory.
/// Sendable: the bytes are written only in init and deinit, so sharing a key between threads is safe.
public final class SymmetricKey: @unchecked Sendable {
    /// Length of every symmetric key in Equicast: XChaCha20-Poly1305, keyed BLAKE2b and crypto_kdf all use 32.
    public static let byteCount = 32

    private let storage: UnsafeMutablePointer<UInt8>

    /// Wraps existing key bytes; fails unless there are exactly `byteCount` of them.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == SymmetricKey.byteCount else {
            throw .wrongLength(what: "symmetric key", expected: SymmetricKey.byteCount, found: bytes.count)
        }
        storage = .allocate(capacity: SymmetricKey.byteCount)
        for i in 0..<SymmetricKey.byteCount { storage[i] = bytes[i] }
    }

    /// A fresh random key from the operating system's CSPRNG.
    public static func generate() -> SymmetricKey {
        Sodium.ensureInitialized()
        var bytes = [UInt8](repeating: 0, count: byteCount)
        bytes.withUnsafeMutableBytes { crypto_kdf_keygen($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        defer { wipe(&bytes) }
        // byteCount bytes by construction.
        return try! SymmetricKey(bytes: bytes)
    }

    deinit {
        sodium_memzero(storage, SymmetricKey.byteCount)
        storage.deallocate()
    }

    /// Calls `body` with the key bytes; the pointer must not escape.
    @inline(__always)
    public func withUnsafeKey<R>(_ body: (UnsafePointer<UInt8>) -> R) -> R {
        body(UnsafePointer(storage))
    }

    /// A copy of the key bytes, for writing a key file. The caller should `wipe` the copy when done.
    public func exportBytes() -> [UInt8] {
        [UInt8](UnsafeBufferPointer(start: storage, count: SymmetricKey.byteCount))
    }

    /// Derives an independent sub-key with libsodium's `crypto_kdf` (BLAKE2b keyed by this key, personalised by an
    /// 8-character context and a numeric id). Equicast never uses the fleet key itself for two algorithms: the
    /// frame AEAD key, the frame MAC key and the key id each come from their own (context, id) pair.
    public func deriveSubkey(id: UInt64, context: StaticString) -> SymmetricKey {
        precondition(context.utf8CodeUnitCount == Int(crypto_kdf_CONTEXTBYTES), "KDF context must be 8 bytes")
        var out = [UInt8](repeating: 0, count: SymmetricKey.byteCount)
        out.withUnsafeMutableBufferPointer { o in
            context.withUTF8Buffer { ctx in
                ctx.baseAddress!.withMemoryRebound(to: CChar.self, capacity: ctx.count) { cctx in
                    _ = crypto_kdf_derive_from_key(o.baseAddress!, SymmetricKey.byteCount, id, cctx, storage)
                }
            }
        }
        defer { wipe(&out) }
        return try! SymmetricKey(bytes: out)
    }
}

/// Overwrites secret bytes in place with zeros in a way the compiler may not optimise away.
public func wipe(_ bytes: inout [UInt8]) {
    if bytes.isEmpty { return }
    bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, $0.count) }
}
