import CEquicastShims
import EquicastCrypto

/// Key files: one key per file as hex or base64 text (see `KeyText`). Secret key files must be mode 0600 or
/// stricter; a secret file readable by group or others is refused, the way ssh refuses such a private key.
public enum KeyFile {
    /// Reads a secret key of `byteCount` bytes, refusing insecure permissions and malformed text.
    public static func loadSecret(_ path: String, byteCount: Int) throws(PosixError) -> [UInt8] {
        let mode = try FileSystem.permissions(path)
        if mode & 0o077 != 0 { throw .insecurePermissions(path: path, mode: mode) }
        var text = try FileSystem.readFile(path, limit: KeyText.textByteCountMax)
        defer { wipe(&text) }
        do throws(CryptoError) {
            return try KeyText.decode(text, byteCount: byteCount)
        } catch {
            throw .badKeyFile(path: path, reason: error)
        }
    }

    /// Reads a public key (no permission check: public keys are meant to be shared).
    public static func loadPublic(_ path: String, byteCount: Int) throws(PosixError) -> [UInt8] {
        let text = try FileSystem.readFile(path, limit: KeyText.textByteCountMax)
        do throws(CryptoError) {
            return try KeyText.decode(text, byteCount: byteCount)
        } catch {
            throw .badKeyFile(path: path, reason: error)
        }
    }

    /// Writes a key as hex, atomically, with mode 0600 for secrets and 0644 for public keys. Refuses to replace
    /// an existing file unless `overwrite`: losing a release key cannot be undone.
    public static func store(_ key: [UInt8], to path: String, secret: Bool, overwrite: Bool = false) throws(PosixError)
    {
        if !overwrite && FileSystem.exists(path) {
            throw .file(path: path, operation: "refusing to overwrite existing key file", errno: EEXIST)
        }
        var text = KeyText.encodeHex(key)
        defer { wipe(&text) }
        try FileSystem.writeFileAtomically(path, text, mode: secret ? 0o600 : 0o644)
    }

    /// Loads the fleet key file into a `SymmetricKey`.
    public static func loadSymmetric(_ path: String) throws(PosixError) -> SymmetricKey {
        var bytes = try loadSecret(path, byteCount: SymmetricKey.byteCount)
        defer { wipe(&bytes) }
        return try! SymmetricKey(bytes: bytes)  // loadSecret returned exactly byteCount bytes
    }
}
